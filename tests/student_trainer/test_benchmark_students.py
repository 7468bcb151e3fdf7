"""benchmarks/distill_quality.py --task real --student encdec: every arm trains the generative student on the same
shards as the extractive one would, and the flags it cannot take are refused before any work."""
from __future__ import annotations

import json

import pytest

from storage import Catalog, Store

TINY = ["--task", "real", "--datasets", "esnli", "--n-train", "8", "--n-val", "6", "--n-test", "6",
        "--teacher-train", "8", "--teacher-steps", "1", "--teacher-batch", "4", "--student-layers", "1",
        "--steps", "2", "--eval-every", "2", "--batch-size", "4", "--seeds", "0", "--threads", "1",
        "--max-input-tokens", "64", "--max-target-tokens", "8"]


def test_student_encdec_trains_every_arm_as_the_generative_student(dq, tmp_path, shared_datasets, monkeypatch):
    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    out = tmp_path / "rows.json"
    assert dq.main([*TINY, "--student", "encdec", "--arms", "plain,rationale,kd,palm", "--store",
                    str(tmp_path / "s"), "--json", str(out)]) == 0
    rows = [r for r in json.loads(out.read_text()) if r["student"] != "teacher"]
    assert len(rows) == 4 and all("encdec" in r["student"] for r in rows), [r["student"] for r in rows]
    assert all(r["paired"] is not None for r in rows if not r["student"].startswith("encdec: plain"))
    with Catalog.open(Store.open(tmp_path / "s")) as cat:
        runs = cat.runs()
    kinds = {json.loads(r["config"])["student"] for r in runs}
    assert kinds == {"encdec"}, kinds  # the rationale run (with its plain twin), kd and palm: no extractive run
    kd_runs = [r["run_id"] for r in runs if json.loads(r["config"]).get("kd_weight")]
    assert len(kd_runs) == 1
    steps = json.loads((tmp_path / "s" / "runs" / kd_runs[0] / "work" / "student-seed0" / "result.json").read_text())
    assert all(step["kd_loss"] > 0 for step in steps["history"])  # the generative student's loss had the KD term


@pytest.mark.parametrize("extra, says", [
    (["--student", "small"], "--student small: with --task real"),
    (["--student", "encdec", "--arms", "plain,soft_kd"], "only --student extractive does"),
    (["--student", "encdec", "--choice-scoring", "spans"], "only --student extractive scores choices"),
])
def test_student_flags_real_data_cannot_take_are_refused_at_parse_time(dq, tmp_path, monkeypatch, capsys, extra,
                                                                        says):
    monkeypatch.setattr(dq, "SHARED", tmp_path / "no-datasets")  # past the check, the run would fail on reading
    with pytest.raises(SystemExit) as exc:
        dq.main([*TINY, *extra, "--store", str(tmp_path / "s")])
    assert exc.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before the store was made
