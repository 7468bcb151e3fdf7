"""Planted cue: a teacher trained here on a task where one known word decides the label; does the
rationale (k=3) contain that word? Every method's hit rate is printed, recorded (record_property
"cue_rates") and put in the assertion message.

Task: 30-word inputs of 300 filler words with one cue word inserted at a random position; 10 cue
words per class; the label is the cue's class (yes / no). A binary task alone lets a teacher learn
"yes-cue present -> yes, otherwise no": it then ignores the no-cues (deleting one changes nothing)
and no faithful method can rank them (measured: see docs/attribution.md). So training also holds,
for half the examples, the same input with the cue replaced by a filler word, labelled "none"
(a counterfactual pair): now every cue is needed. Held-out examples all carry a cue, and the
teacher must answer them from it.
"""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from attribution_worker.engine import AttributionConfig, AttributionEngine
from attribution_worker.methods import METHODS
from attribution_worker.tiny import build_tiny_teacher
from attribution_worker.tiny_train import train_tiny_teacher

LENGTH, N_FILL, N_CUE = 30, 300, 10
FILL = [f"w{i}" for i in range(N_FILL)]
CUES = {"yes": [f"ya{i}" for i in range(N_CUE)], "no": [f"nb{i}" for i in range(N_CUE)]}


def cue_task(n: int, seed: int, none_share: float = 0.0) -> list[dict]:
    """Rows with one cue word each; with probability none_share also its cue-less twin, labelled none."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(sorted(CUES))
        words = [rng.choice(FILL) for _ in range(LENGTH - 1)]
        pos = rng.randrange(LENGTH)
        if rng.random() < none_share:
            twin = words[:pos] + [rng.choice(FILL)] + words[pos:]
            rows.append({"example_id": f"{i}n", "input": " ".join(twin), "target": "none", "cue": None})
        cue = rng.choice(CUES[label])
        words.insert(pos, cue)
        rows.append({"example_id": str(i), "input": " ".join(words), "target": label, "cue": cue,
                     "choices": None, "split": "test"})
    return rows


def cue_rates(path: str, held_out: list[dict], methods=METHODS, **config) -> dict:
    """{method: share of held-out rows whose k=3 rationale holds the cue} plus per-class shares and accuracy."""
    rates: dict = {}
    for method in methods:
        engine = AttributionEngine(AttributionConfig(teacher=path, method=method, k=3, max_new_tokens=3, **config))
        out = engine.attribute(held_out)
        assert all(o["error"] is None for o in out), [o["error"] for o in out if o["error"]][:3]
        hits = [r["cue"] in o["rationale"] for r, o in zip(held_out, out)]
        rates[method] = round(float(np.mean(hits)), 3)
        for label in sorted(CUES):
            rates[f"{method}[{label}]"] = round(float(np.mean([h for h, r in zip(hits, held_out) if r["target"] == label])), 3)
        rates["teacher_accuracy"] = round(float(np.mean([o["teacher_correct"] for o in out])), 3)
        if method == "occlusion":  # how much the teacher relies on the cue: log p drop when it alone is masked
            for label in sorted(CUES):
                rates[f"cue_effect[{label}]"] = round(float(np.mean(
                    [o["scores"][o["tokens"].index(r["cue"])] for r, o in zip(held_out, out) if r["target"] == label])), 3)
        rates[f"{method}:comprehensiveness"] = round(float(np.mean([o["comprehensiveness"] for o in out])), 3)
    return rates


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread, and far faster when other jobs share the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _report(capsys, record_property, name: str, rates: dict) -> str:
    line = f"{name}: " + json.dumps(rates)
    record_property(name, json.dumps(rates))
    with capsys.disabled():  # shown without -s
        print("\n" + line)
    return line


def _train_until_learned(root, train, tries=4) -> tuple[str, dict]:
    """A classifier teacher that learned the task (>= 99% of training rows), restarting from a new
    seed when one gets stuck (these tiny teachers learn in a sudden jump; a few seeds never jump)."""
    stats: dict = {}
    for seed in range(tries):
        path = build_tiny_teacher(root / f"clf{seed}", kind="classifier", texts=[" ".join(FILL + CUES["yes"] + CUES["no"])],
                                  labels=["yes", "no", "none"], d_model=64, layers=1, heads=4, seed=seed + 1)
        stats = train_tiny_teacher(path, [(r["input"], r["target"]) for r in train], steps=600, batch_size=64,
                                   lr=1e-3, seed=seed + 1, until_accuracy=0.99)
        stats["seed"] = seed + 1
        if stats["train_accuracy"] >= 0.99:
            break
    return str(path), stats


def test_planted_cue_is_in_the_rationale(tmp_path, capsys, record_property):
    train = cue_task(14000, seed=0, none_share=0.5)
    held_out = cue_task(150, seed=1)
    path, stats = _train_until_learned(tmp_path, train)
    rates = cue_rates(path, held_out, n_steps=16)
    line = _report(capsys, record_property, "cue_rates", {**rates, "train": stats})
    assert rates["teacher_accuracy"] >= 0.95, f"the teacher did not learn the task: {line}"
    assert max(rates[m] for m in METHODS) >= 0.90, f"no method finds the planted cue in 90% of rows: {line}"
    # the finding this test guards: on a teacher that uses every cue, a gradient method is as faithful as occlusion
    assert max(rates[m] for m in ("saliency", "input_x_gradient", "integrated_gradients")) >= 0.90, line


@pytest.mark.slow
def test_planted_cue_binary_t5(tmp_path, capsys, record_property):
    """The brief's probe: T5 (d_model 64, 2 layers), binary task, no counterfactual twins.

    Such a teacher leans on one class's cues more than the other's (see docs/attribution.md), so
    rates are reported per class with `cue_effect` (log p drop when the cue alone is masked), and
    the 90% bar applies to the class whose cues it relies on. Integrated gradients needs more steps here than on the classifier:
    the default 16 under-integrates a sharp cue detector; 64 steps are measured as well.
    """
    train = cue_task(4000, seed=0)
    held_out = cue_task(200, seed=1)
    path = build_tiny_teacher(tmp_path / "t5", kind="seq2seq", texts=[" ".join(FILL + CUES["yes"] + CUES["no"] + ["yes", "no"])],
                              d_model=64, layers=2, heads=2, seed=0)
    stats = train_tiny_teacher(path, [(r["input"], r["target"]) for r in train], steps=600, lr=3e-3, seed=0)
    rates = cue_rates(str(path), held_out, n_steps=16)
    ig64 = cue_rates(str(path), held_out, methods=("integrated_gradients",), n_steps=64)
    rates.update({k.replace("integrated_gradients", "integrated_gradients_64"): v for k, v in ig64.items() if k != "teacher_accuracy"})
    line = _report(capsys, record_property, "cue_rates_binary_t5", {**rates, "train": stats})
    assert rates["teacher_accuracy"] >= 0.95, line
    relied_on = max(CUES, key=lambda c: rates[f"cue_effect[{c}]"])  # the class whose cues the teacher uses most
    assert max(rates[f"{m}[{relied_on}]"] for m in (*METHODS, "integrated_gradients_64")) >= 0.90, line
