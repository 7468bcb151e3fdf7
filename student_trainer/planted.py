"""The planted-cue task: a dataset where the right rationale is known, for a live rationale-vs-plain comparison.

    info = build_planted(catalog, PlantedTask(), n_train=100, n_val=200, n_test=500, teacher_train=1500,
                         teacher_steps=600, workdir=tmp)     # teacher -> AttributionEngine rows -> shards
    info["teacher_test_accuracy"], info["cue_hit_rate"]      # then train on dataset "planted"

Inputs are `words` words drawn from a filler vocabulary (w0 ... w{fillers-1}); one of them is a cue word
cue<c>x<j>; each class c owns `cues` cue words and the label is the class of the cue. The teacher, a tiny
BERT classifier (attribution_worker.tiny, trained by tiny_train with word dropout), is fitted on
`teacher_train` separate examples; its rationale is its top-k occlusion words, written as rationale
shards (one job per split) through storage.write_shard exactly as an attribution job writes them,
plus schema v3's answer_choices / answer_probs (the teacher's softmax over the classes) for KD.
"""
from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from storage import Catalog, rationale_table, write_shard


@dataclass(frozen=True)
class PlantedTask:
    classes: int = 2
    """Number of classes."""
    cues: int = 10
    """Cue words per class."""
    words: int = 30
    """Words per input (one of them the cue)."""
    fillers: int = 300
    """Filler vocabulary size."""

    @property
    def labels(self) -> list[str]:
        return [f"class{c}" for c in range(self.classes)]

    @property
    def vocabulary(self) -> list[str]:
        return ([f"w{i}" for i in range(self.fillers)]
                + [f"cue{c}x{j}" for c in range(self.classes) for j in range(self.cues)])


def planted_examples(task: PlantedTask, n: int, rng: random.Random, split: str) -> list[dict]:
    """n dataset rows {example_id, input, target, choices, split, cue}."""
    out = []
    for i in range(n):
        c = rng.randrange(task.classes)
        cue = f"cue{c}x{rng.randrange(task.cues)}"
        words = [f"w{rng.randrange(task.fillers)}" for _ in range(task.words - 1)]
        words.insert(rng.randrange(task.words), cue)
        out.append({"example_id": f"{split}-{i}", "input": " ".join(words), "target": task.labels[c],
                    "choices": None, "split": split, "cue": cue})
    return out


def write_split_jobs(catalog: Catalog, dataset: str, rows_by_split: dict[str, list[dict]], job: str) -> None:
    """One job per split, one shard each, through storage.write_shard (the trainer's real input).

    Rows carrying schema v3's answer_choices / answer_probs keep them when the store's schema has them.
    """
    for split, rows in rows_by_split.items():
        job_id = f"{dataset}-{job}-{split}"
        if catalog.committed_shards(job_id):
            continue  # re-running is a no-op
        catalog.create_job(job_id, dataset=dataset, split=split, spec={"task": "planted"}, total_rows=len(rows),
                           shards_total=1)
        catalog.mark_running(job_id)
        write_shard(catalog, rationale_table(rows, dataset=dataset, split=split, job_id=job_id, shard_index=0),
                    dataset=dataset, job_id=job_id, index=0)
        catalog.mark_succeeded(job_id)


def build_planted(catalog: Catalog, task: PlantedTask = PlantedTask(), *, dataset: str = "planted", n_train: int = 100,
                  n_val: int = 200, n_test: int = 500, teacher_train: int = 1500, teacher_steps: int = 600,
                  teacher_lr: float = 3e-3, word_dropout: float = 0.2, method: str = "occlusion", k: int = 1,
                  seed: int = 0, workdir: Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Fit the planted teacher, attribute train / valid / test rows, write them as `dataset`'s shards.

    Returns {"teacher_test_accuracy", "cue_hit_rate" (share of training rows whose rationale holds the cue),
    "seconds"}; the rows themselves are in the catalog.
    """
    from attribution_worker.engine import AttributionConfig, AttributionEngine
    from attribution_worker.tiny import build_tiny_teacher
    from attribution_worker.tiny_train import train_tiny_teacher

    t0 = time.perf_counter()
    rng = random.Random(seed)
    teacher_rows = planted_examples(task, teacher_train, rng, "teacher")
    splits = {"train": planted_examples(task, n_train, rng, "train"),
              "valid": planted_examples(task, n_val, rng, "valid"),
              "test": planted_examples(task, n_test, rng, "test")}
    workdir = Path(workdir or tempfile.mkdtemp(prefix="planted-"))
    path = build_tiny_teacher(workdir / "teacher", kind="classifier", texts=task.vocabulary + task.labels, d_model=32,
                              layers=2, heads=2, seed=seed, labels=task.labels)
    stats = train_tiny_teacher(path, [(r["input"], r["target"]) for r in teacher_rows], steps=teacher_steps,
                               lr=teacher_lr, word_dropout=word_dropout, seed=seed)
    log(f"   planted teacher: tiny BERT classifier, {teacher_train} rows, {stats['steps']} steps in {stats['seconds']} s")
    engine = AttributionEngine(AttributionConfig(teacher=str(path), method=method, k=k, faithfulness=False, device="cpu"))
    probs = _teacher_probs(path)
    rows = {}
    for split, exs in splits.items():
        out = []
        for i in range(0, len(exs), 256):
            out += engine.attribute(exs[i:i + 256])
        for r, e in zip(out, exs):
            r["answer_choices"] = task.labels
            r["answer_probs"] = probs(e["input"])
        rows[split] = out
    write_split_jobs(catalog, dataset, rows, "teacher")
    test = [r for r in rows["test"] if r["error"] is None]
    hits = [e["cue"] in (r["rationale"] or []) for e, r in zip(splits["train"], rows["train"])]
    return {"teacher_test_accuracy": sum(r["teacher_output"] == r["target_text"] for r in test) / max(1, len(test)),
            "cue_hit_rate": sum(hits) / max(1, len(hits)), "seconds": round(time.perf_counter() - t0, 1)}


def _teacher_probs(path: Path):
    """input -> the classifier teacher's softmax over its labels (rendered with the generic template, as trained)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from attribution_worker.templates import resolve_template

    tpl = resolve_template("generic")
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()

    def probs(text: str) -> list[float]:
        with torch.no_grad():
            enc = tok(tpl.render(text)[0], truncation=True, max_length=256, return_tensors="pt")
            return torch.softmax(model(**enc).logits.float(), -1)[0].tolist()
    return probs
