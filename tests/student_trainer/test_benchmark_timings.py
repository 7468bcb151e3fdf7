"""benchmarks/distill_quality.py says where its own wall time went, so a run's time claims come from its output."""
from __future__ import annotations

import json
import os
import re

import torch

from benchmarks.distill import arms


def stages_of(out: str, dataset: str) -> dict[str, int]:
    table = out[out.index("where the time went (wall seconds, this run):"):]
    return {k: int(v) for k, v in re.findall(rf"^\| {dataset} \| ([^|]+?) \| (\d+) \|$", table, re.MULTILINE)}


def test_the_time_table_adds_up_to_each_total_in_whole_seconds():
    timings = [{"dataset": "esnli", "stage": "data (read the dataset files)", "seconds": 1.4},
               {"dataset": "esnli", "stage": arms.TEACHER_STAGE, "seconds": 2.6},
               {"dataset": "esnli", "stage": "arm plain", "seconds": 3.5},
               {"dataset": "esnli", "stage": "total", "seconds": 10.2},
               {"dataset": "planted", "stage": "total", "seconds": 7.0}]
    esnli = stages_of(arms.time_table(timings), "esnli")
    assert esnli == {"data (read the dataset files)": 1, arms.TEACHER_STAGE: 3, "arm plain": 4,
                     "between the stages": 2, "total": 10}
    assert stages_of(arms.time_table(timings), "planted") == {"total": 7}  # no stages: no "between" row
    # rounding each stage alone would print 1 + 1 + 1 (+ 0 between) against a total of 2; on the running sum
    # they add up
    stages = [{"dataset": "svamp", "stage": f"arm {i}", "seconds": 0.6} for i in range(3)]
    svamp = stages_of(arms.time_table([*stages, {"dataset": "svamp", "stage": "total", "seconds": 1.9}]), "svamp")
    assert sum(v for k, v in svamp.items() if k != "total") == svamp["total"] == 2


def test_a_real_run_prints_its_stages_and_their_seconds_and_keeps_each_arms_in_the_json(dq, tmp_path, shared_datasets,
                                                                                         monkeypatch, capsys):
    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    out_json = tmp_path / "rows.json"
    assert dq.main(["--task", "real", "--datasets", "esnli", "--n-train", "8", "--n-val", "6", "--n-test", "6",
                    "--teacher-train", "8", "--teacher-steps", "1", "--teacher-batch", "4", "--student-layers", "1",
                    "--steps", "2", "--eval-every", "2", "--batch-size", "4", "--seeds", "0", "--threads", "1",
                    "--max-input-tokens", "64", "--arms", "plain,rationale,kd", "--store", str(tmp_path / "s"),
                    "--teacher-out", str(tmp_path / "teacher"), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    stages = stages_of(out, "esnli")
    assert list(stages) == ["data (read the dataset files)", arms.TEACHER_STAGE, "attribution (rows written to the store)",
                            "arm rationale (and its plain baseline)", "arm kd", "between the stages", "total"]
    assert sum(v for k, v in stages.items() if k != "total") == stages["total"]
    # the run says where it ran: under the table, in every JSON row, and in each student run's stored config
    here = arms.machine()
    assert here["threads"] == 1 and here["cores"] == len(os.sched_getaffinity(0)) and here["torch"] == torch.__version__
    assert out.splitlines()[-1] == arms.machine_line(here)
    assert f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels), 1 threads" in out
    rows = json.loads(out_json.read_text())
    assert all(r["machine"] == here for r in rows)
    configs = (tmp_path / "s" / "runs").glob("*/config.json")
    stored = [json.loads(c.read_text())["extra"]["args"]["machine"] for c in configs]
    assert len(stored) == 2 and all(m == here for m in stored)  # the rationale run (with plain) and the kd run
    rows = {r["student"]: r for r in rows}
    assert rows.pop("teacher")["seconds"] > 0
    plain = rows.pop("plain fine-tuning (same student, a=1)")["seconds"]
    assert len(rows) == 2 and plain > 0 and all(r["seconds"] > 0 for r in rows.values())
    # the rationale run trained plain too: between them they hold that one run's time, not twice it
    rationale = next(r["seconds"] for name, r in rows.items() if "teacher rationales" in name)
    assert abs(round(plain + rationale) - stages["arm rationale (and its plain baseline)"]) <= 1


def test_a_reused_teacher_has_no_teacher_time_and_a_teacher_only_run_has_one(dq, tmp_path, shared_datasets,
                                                                              monkeypatch, capsys):
    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    tiny = ["--task", "real", "--datasets", "esnli", "--n-train", "8", "--n-val", "6", "--n-test", "6",
            "--teacher-train", "8", "--teacher-steps", "1", "--teacher-batch", "4", "--max-input-tokens", "64",
            "--threads", "1"]
    teacher, first, second = tmp_path / "teacher", tmp_path / "first.json", tmp_path / "second.json"
    assert dq.main([*tiny, "--arms", "teacher", "--teacher-out", str(teacher), "--store", str(tmp_path / "s1"),
                    "--json", str(first)]) == 0
    assert arms.TEACHER_STAGE in stages_of(capsys.readouterr().out, "esnli")
    assert json.loads(first.read_text())[0]["seconds"] > 0
    assert dq.main([*tiny, "--arms", "plain", "--teacher-dir", str(teacher), "--student-layers", "1", "--steps", "1",
                    "--eval-every", "1", "--batch-size", "4", "--seeds", "0", "--store", str(tmp_path / "s2"),
                    "--json", str(second)]) == 0
    stages = stages_of(capsys.readouterr().out, "esnli")
    assert arms.TEACHER_STAGE not in stages and "arm plain" in stages
    rows = {r["student"]: r for r in json.loads(second.read_text())}
    assert rows["teacher"]["seconds"] is None
