"""The demo (`make demo`) end to end at a small size: ingest, the e-SNLI slice, teacher, Ray job, SQL, students."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

SMALL = dict(teacher_rows=200, teacher_steps=4, student_rows=40, val_rows=20, test_rows=20, student_steps=6)


def test_demo_runs_every_stage_and_rerun_reuses_the_work(store, shared_datasets):
    from api.demo import DEMO_DATASET, DemoConfig, run_demo, write_slice
    from storage import Catalog

    lines: list[str] = []
    cfg = DemoConfig(**SMALL)
    with Catalog.open(store) as cat:
        summary = run_demo(cat, datasets_dir=shared_datasets, cfg=cfg, say=lines.append)
        assert summary["examples"] == 9741 + 1221 + 800 + 200 + 9842 + 9824 + 1000 + 1000 + 40 + 20 + 20
        assert summary["job"]["status"] == "succeeded" and summary["job"]["rows"] == 80
        assert summary["rationales"] == 80
        per_split = {r["split"]: r["n"] for r in cat.query(
            "SELECT split, count(DISTINCT example_id) AS n FROM rationales WHERE dataset = ? GROUP BY split", [DEMO_DATASET])}
        assert per_split == {"train": 40, "valid": 20, "test": 20}
        # the slice's pools never share a row, and the teacher trained on none of them
        ids = {r["example_id"] for r in cat.query("SELECT example_id FROM rationales WHERE dataset = ?", [DEMO_DATASET])}
        assert len(ids) == 80
        _, teacher_rows = write_slice(cat, cfg)
        assert len(teacher_rows) == 200 and not ids & {r["example_id"] for r in teacher_rows}
        # every row carries the teacher's distribution over the three labels (what the KD term reads)
        probs = cat.query("SELECT answer_choices, answer_probs FROM rationales WHERE dataset = ?", [DEMO_DATASET])
        assert all(r["answer_choices"] == ["entailment", "neutral", "contradiction"] for r in probs)
        assert all(abs(sum(r["answer_probs"]) - 1) < 1e-4 for r in probs)
        # NLI labels are scaffolding: never a rationale word
        assert cat.query("SELECT count(*) AS n FROM rationale_tokens WHERE token IN ('premise:', 'hypothesis:')")[0]["n"] == 0
        run = summary["run"]
        assert run["promoted"] is True and set(run["val_accuracy"]) == {"student", "baseline"}
        config = json.loads((store.run_dir(run["run_id"]) / "config.json").read_text())
        # "with": tagging on the rationales and KD on the distribution, from this job's rows only
        assert (config["label_weight"], config["kd_weight"], config["job"]) == (0.8, 0.5, summary["job"]["job_id"])
        assert 0 <= run["test_accuracy"]["student"] <= 1 and 0 <= run["teacher_test_accuracy"] <= 1
        gap = next(line for line in lines if line.strip().startswith("gap "))
        assert f"{run['gap_points']:+.1f} points" in gap  # the printed gap is this run's

        again = run_demo(cat, datasets_dir=shared_datasets, cfg=cfg, say=lines.append)
        assert again["job"]["job_id"] == summary["job"]["job_id"] and again["job"]["committed_now"] == 0
        assert cat.query("SELECT count(*) AS n FROM rationales WHERE dataset = ?", [DEMO_DATASET])[0]["n"] == 80
        assert any("unchanged" in line for line in lines)
        assert any("teacher already fine-tuned" in line and "teacher-minilm-200x4-" in line for line in lines)

        # other sizes: a new slice version and job; the students read that job's rows, not the old job's too
        lines.clear()
        bigger = run_demo(cat, datasets_dir=shared_datasets,
                          cfg=DemoConfig(**{**SMALL, "student_rows": 50, "seeds": [0, 1]}), say=lines.append)
        assert bigger["job"]["job_id"] != summary["job"]["job_id"] and bigger["rationales"] == 90
        counts = json.loads((store.run_dir(bigger["run"]["run_id"]) / "metrics.json").read_text())["counts"]
        assert (counts["train"], counts["val"], counts["test"], counts["rows_read"]) == (50, 20, 20, 90)
        assert any("50 e-SNLI rows" in line for line in lines)
        assert any("teacher already fine-tuned" in line for line in lines)  # same teacher pool and steps
        paired = bigger["run"]["paired"]
        assert len(paired["values"]) == 2 and any(line.strip().startswith(
            f"paired per seed: {paired['mean'] * 100:+.1f} ± {paired['std'] * 100:.1f} points") for line in lines)

        # sizes the data cannot fill are refused naming the flag, before a teacher is trained
        with pytest.raises(ValueError, match="--test-rows 1000000: e-SNLI's test file has 9824 rows"):
            write_slice(cat, DemoConfig(**{**SMALL, "test_rows": 10**6}))
        with pytest.raises(ValueError, match="ask for fewer rows \\(--teacher-rows / --student-rows / --val-rows\\)"):
            write_slice(cat, DemoConfig(**{**SMALL, "student_rows": 10**6}))


def test_demo_names_the_fix_for_a_missing_datasets_dir(tmp_path):
    out = subprocess.run([sys.executable, "-m", "api", "--store", str(tmp_path / "s"), "demo",
                          "--datasets-dir", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "--datasets-dir" in out.stderr and "SALIENT_SHARED_DATASETS" in out.stderr


def test_demo_refuses_sizes_below_one_naming_the_flag(tmp_path, shared_datasets):
    out = subprocess.run([sys.executable, "-m", "api", "--store", str(tmp_path / "s"), "demo", "--datasets-dir",
                          str(shared_datasets), "--student-rows", "0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "--student-rows 0" in out.stderr
    assert not (tmp_path / "s" / "datasets").exists()  # refused before anything was written


def test_duplicate_seeds_are_refused_before_any_work():
    from api.demo import DemoConfig

    with pytest.raises(ValueError, match="--seeds 0 0: give one or more distinct seeds"):
        DemoConfig(seeds=[0, 0])


@pytest.mark.parametrize("env, cpus, expected", [
    ({}, 2, {"num_cpus_per_actor": 2}),
    ({}, 1, {}),  # Ray counts one CPU here (a container's limit): the actor keeps the default
    ({"RAY_ADDRESS": "127.0.0.1:6379"}, 2, {}),  # a joined cluster's nodes may be smaller
    ({"SALIENT_RAY_ADDRESS": "127.0.0.1:6379"}, 2, {}),
    ({"SALIENT_RAY_NUM_CPUS": "1"}, 2, {}),
    ({"SALIENT_NUM_CPUS_PER_ACTOR": "1"}, 2, {}),  # the user's setting wins
])
def test_the_actor_takes_two_cores_only_where_ray_counts_them_here(monkeypatch, env, cpus, expected):
    import ray._private.utils

    from api.demo import _actor_cpus

    for name in ("RAY_ADDRESS", "SALIENT_RAY_ADDRESS", "SALIENT_RAY_NUM_CPUS", "SALIENT_NUM_CPUS_PER_ACTOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(ray._private.utils, "get_num_cpus", lambda *a, **k: cpus)
    assert _actor_cpus() == expected
