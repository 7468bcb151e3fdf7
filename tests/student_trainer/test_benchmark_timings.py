"""benchmarks/distill_quality.py says where its own wall time went, so a run's time claims come from its output."""
from __future__ import annotations

import json
import re


def test_a_real_run_prints_its_stages_and_their_seconds_and_keeps_each_arms_in_the_json(dq, tmp_path, shared_datasets,
                                                                                         monkeypatch, capsys):
    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    out_json = tmp_path / "rows.json"
    assert dq.main(["--task", "real", "--datasets", "esnli", "--n-train", "8", "--n-val", "6", "--n-test", "6",
                    "--teacher-train", "8", "--teacher-steps", "1", "--teacher-batch", "4", "--student-layers", "1",
                    "--steps", "2", "--eval-every", "2", "--batch-size", "4", "--seeds", "0", "--threads", "1",
                    "--max-input-tokens", "64", "--arms", "plain,rationale_kd", "--store", str(tmp_path / "s"),
                    "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("where the time went (wall seconds, this run):"):]
    stages = dict(re.findall(r"^\| esnli \| ([^|]+?) \| (\d+) \|$", table, re.MULTILINE))
    assert list(stages) == ["data (read the dataset files)", dq.TEACHER_STAGE, "attribution (rows written to the store)",
                            "arm rationale_kd", "arm plain", "between the stages", "total"]
    parts = sum(int(v) for k, v in stages.items() if k != "total")
    assert abs(parts - int(stages["total"])) <= len(stages)  # the column adds up to the total, up to rounding
    rows = {r["student"]: r for r in json.loads(out_json.read_text())}
    arms = [r for name, r in rows.items() if name != "teacher"]
    assert len(arms) == 2 and all(r["seconds"] > 0 for r in arms)
    assert rows["teacher"]["seconds"] > 0


def test_a_reused_teacher_has_no_fine_tuning_time(dq, tmp_path, shared_datasets, monkeypatch, capsys):
    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    tiny = ["--task", "real", "--datasets", "esnli", "--n-train", "8", "--n-val", "6", "--n-test", "6",
            "--teacher-train", "8", "--teacher-steps", "1", "--teacher-batch", "4", "--max-input-tokens", "64",
            "--threads", "1"]
    teacher = tmp_path / "teacher"
    assert dq.main([*tiny, "--arms", "teacher", "--teacher-out", str(teacher), "--store", str(tmp_path / "s1")]) == 0
    capsys.readouterr()
    out_json = tmp_path / "rows.json"
    assert dq.main([*tiny, "--arms", "plain", "--teacher-dir", str(teacher), "--student-layers", "1", "--steps", "1",
                    "--eval-every", "1", "--batch-size", "4", "--seeds", "0", "--store", str(tmp_path / "s2"),
                    "--json", str(out_json)]) == 0
    table = capsys.readouterr().out.split("where the time went")[1]
    assert dq.TEACHER_STAGE not in table and "| esnli | arm plain |" in table
    rows = {r["student"]: r for r in json.loads(out_json.read_text())}
    assert rows["teacher"]["seconds"] is None
