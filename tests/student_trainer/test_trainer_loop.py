"""The training loop: loss falls on tiny-teacher shards, baseline twins, resume after a kill."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from st_helpers import FILL, add_job, tiny_cfg, toy_rows
from student_trainer.data import load_data
from student_trainer.presets import build_tokenizer
from student_trainer.run import run_training
from student_trainer.train import Interrupted, fit

REPO = Path(__file__).resolve().parents[2]


def test_tiny_student_learns_from_tiny_teacher_shards(catalog, tmp_path):
    """Real engine: a tiny T5 teacher answers and attributes; its shards train a tiny student."""
    from attribution_worker.engine import AttributionConfig, AttributionEngine
    from attribution_worker.tiny import build_tiny_teacher
    from attribution_worker.tiny_train import train_tiny_teacher
    from storage import rationale_table, write_shard

    rng = random.Random(3)
    examples = []
    for i in range(96):
        label = rng.choice(["yes", "no"])
        words = [rng.choice(FILL) for _ in range(5)]
        words.insert(rng.randrange(6), {"yes": "good", "no": "bad"}[label])
        examples.append({"example_id": f"e{i}", "input": " ".join(words), "target": label, "choices": None,
                         "split": "train" if i < 72 else "test"})
    teacher = build_tiny_teacher(tmp_path / "teacher", kind="seq2seq", texts=FILL + ["good", "bad", "yes", "no"])
    train_tiny_teacher(teacher, [(e["input"], e["target"]) for e in examples[:72]], steps=150, seed=0)
    engine = AttributionEngine(AttributionConfig(teacher=str(teacher), k=2, faithfulness=False, device="cpu"))
    catalog.create_job("tiny-job", dataset="tinyds", split=None, spec={}, total_rows=96, shards_total=2)
    for index, split in enumerate(("train", "test")):
        exs = [e for e in examples if e["split"] == split]
        rows = engine.attribute(exs)
        assert all(r["error"] is None and len(r["rationale"]) == 2 for r in rows)
        write_shard(catalog, rationale_table(rows, dataset="tinyds", split=split, job_id="tiny-job", shard_index=index),
                    dataset="tinyds", job_id="tiny-job", index=index)
    result = run_training(catalog, tiny_cfg(dataset="tinyds", steps=40, eval_every=20, batch_size=16))
    student = result["metrics"]["variants"]["student"]
    hist = json.loads((catalog.store.run_dir(result["run_id"]) / "work" / "student-seed0" / "result.json").read_text())["history"]
    first = sum(h["label_loss"] for h in hist[:5]) / 5
    last = sum(h["label_loss"] for h in hist[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    assert all("rationale_loss" in h for h in hist)
    assert hist[-1]["rationale_loss"] < hist[0]["rationale_loss"]
    assert student["test_accuracy"]["mean"] is not None
    run_dir = catalog.store.run_dir(result["run_id"])
    for name in ("config.json", "metrics.json", "report.html", "curves.png", "run.json", "model/config.json"):
        assert (run_dir / name).exists(), name


def test_baseline_sees_identical_rows_and_seeds(toy):
    result = run_training(toy, tiny_cfg(compare_baseline=True, seeds=[0, 1], steps=8, eval_every=8))
    work = toy.store.run_dir(result["run_id"]) / "work"
    for seed in (0, 1):
        student = json.loads((work / f"student-seed{seed}" / "result.json").read_text())
        baseline = json.loads((work / f"baseline-seed{seed}" / "result.json").read_text())
        assert student["seed"] == baseline["seed"] == seed
        assert [h["rows"] for h in student["history"]] == [h["rows"] for h in baseline["history"]]
        assert student["label_weight"] == 0.5 and baseline["label_weight"] == 1.0
        assert all("rationale_loss" not in h for h in baseline["history"])
    s0 = json.loads((work / "student-seed0" / "result.json").read_text())["history"]
    s1 = json.loads((work / "student-seed1" / "result.json").read_text())["history"]
    assert [h["rows"] for h in s0] != [h["rows"] for h in s1]  # seeds do change the order
    variants = result["metrics"]["variants"]
    assert variants["baseline"]["val_accuracy"]["n"] == 2 == variants["student"]["val_accuracy"]["n"]


def _fit(cfg, data, tok, work, **kw):
    return fit(cfg, data, tok, seed=0, label_weight=0.5, work_dir=work, **kw)


def test_resume_after_kill_matches_uninterrupted(toy, tmp_path):
    cfg = tiny_cfg(steps=14, eval_every=7, checkpoint_every=4)
    data = load_data(toy, cfg)
    tok = build_tokenizer(data.texts())
    straight = _fit(cfg, data, tok, tmp_path / "straight")
    with pytest.raises(Interrupted):
        _fit(cfg, data, tok, tmp_path / "killed", stop_after_step=10)  # last checkpoint: step 8
    assert (tmp_path / "killed" / "checkpoint.pt").exists()
    resumed = _fit(cfg, data, tok, tmp_path / "killed")
    assert resumed.resumed_from == 8
    assert resumed.steps_done == straight.steps_done == 14
    assert [h["rows"] for h in resumed.history] == [h["rows"] for h in straight.history]
    for a, b in zip(resumed.history, straight.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
    assert resumed.val_accuracy == pytest.approx(straight.val_accuracy, abs=1e-9)
    assert resumed.test_accuracy == pytest.approx(straight.test_accuracy, abs=1e-9)
    for (ka, va), (kb, vb) in zip(resumed.model.state_dict().items(), straight.model.state_dict().items()):
        assert torch.allclose(va, vb, atol=1e-5), ka
    assert not (tmp_path / "killed" / "checkpoint.pt").exists()  # a finished seed leaves no checkpoint


def test_interrupted_run_resumes_by_run_id(toy):
    cfg = tiny_cfg(steps=8, eval_every=8, checkpoint_every=4)
    with pytest.raises(Interrupted):
        run_training(toy, cfg, run_id="r1", stop_after_step=6)
    assert toy.query("SELECT status FROM runs WHERE run_id = 'r1'")[0]["status"] == "failed"
    result = run_training(toy, cfg, run_id="r1")
    assert toy.query("SELECT status FROM runs WHERE run_id = 'r1'")[0]["status"] == "succeeded"
    per_seed = result["metrics"]["variants"]["student"]["per_seed"][0]
    assert per_seed["steps_done"] == 8
    with pytest.raises(ValueError, match="--run-id r1"):
        run_training(toy, tiny_cfg(steps=9, eval_every=9), run_id="r1")


@pytest.mark.gpu
def test_cuda_bf16_path(toy):
    result = run_training(toy, tiny_cfg(device="cuda", dtype="bf16", steps=6, eval_every=6))
    assert result["metrics"]["variants"]["student"]["val_accuracy"]["mean"] is not None


def test_sigkill_then_resume_matches_uninterrupted(toy):
    """A real `salient train` process is SIGKILLed after its first checkpoint; the same command resumes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from api.cli import main

    store = str(toy.store.root)
    toy.close()  # the CLI processes are the catalog writers now
    flags = ["--dataset", "toy", "--steps", "40", "--eval-every", "20", "--checkpoint-every", "5", "--batch-size", "8",
             "--max-target-tokens", "4", "--no-progress", "--no-promote", "--threads", "1"]
    assert main(["--store", store, "train", *flags, "--run-id", "straight"]) == 0
    work = Path(store) / "runs" / "killed" / "work" / "student-seed0"
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "--store", store, "train", *flags, "--run-id", "killed"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (work / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the trainer exited ({proc.returncode}) before it could be killed mid-run"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (work / "result.json").exists()
    assert main(["--store", store, "train", *flags, "--run-id", "killed"]) == 0
    resumed = json.loads((work / "result.json").read_text())
    straight = json.loads((Path(store) / "runs" / "straight" / "work" / "student-seed0" / "result.json").read_text())
    assert resumed["resumed_from"] is not None and resumed["resumed_from"] % 5 == 0
    assert [h["rows"] for h in resumed["history"]] == [h["rows"] for h in straight["history"]]
    for a, b in zip(resumed["history"], straight["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
    assert resumed["val_accuracy"] == pytest.approx(straight["val_accuracy"], abs=1e-9)
    assert resumed["test_accuracy"] == pytest.approx(straight["test_accuracy"], abs=1e-9)
