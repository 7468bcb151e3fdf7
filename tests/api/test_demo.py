"""The demo (`make demo`) end to end at a small size: ingest, teacher, Ray job, SQL, student, registry."""
from __future__ import annotations

import subprocess
import sys

import pytest


def test_demo_runs_every_stage_and_rerun_reuses_the_work(store, shared_datasets):
    from api.demo import run_demo
    from storage import Catalog

    lines: list[str] = []
    with Catalog.open(store) as cat:
        summary = run_demo(cat, datasets_dir=shared_datasets, rows=60, teacher_steps=20, student_steps=20,
                           fit_rows_n=200, say=lines.append)
        assert summary["examples"] == 9741 + 1221 + 800 + 200 + 9842 + 9824 + 1000 + 1000
        assert summary["job"]["status"] == "succeeded" and summary["job"]["rows"] == 60
        assert summary["rationales"] == 60
        assert cat.query("SELECT count(DISTINCT example_id) AS n FROM rationales WHERE dataset = 'esnli'")[0]["n"] == 60
        assert summary["run"]["promoted"] is True
        assert set(summary["run"]["val_accuracy"]) == {"student", "baseline"}
        # NLI labels are scaffolding: never a rationale word
        assert cat.query("SELECT count(*) AS n FROM rationale_tokens WHERE token IN ('premise:', 'hypothesis:')")[0]["n"] == 0

        again = run_demo(cat, datasets_dir=shared_datasets, rows=60, teacher_steps=20, student_steps=20,
                         fit_rows_n=200, say=lines.append)
        assert again["job"]["job_id"] == summary["job"]["job_id"] and again["job"]["committed_now"] == 0
        assert cat.query("SELECT count(*) AS n FROM rationales WHERE dataset = 'esnli'")[0]["n"] == 60  # no duplicates
    assert any("unchanged" in line for line in lines)


def test_demo_names_the_fix_for_a_missing_datasets_dir(tmp_path):
    out = subprocess.run([sys.executable, "-m", "api", "--store", str(tmp_path / "s"), "demo",
                          "--datasets-dir", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "--datasets-dir" in out.stderr and "SALIENT_SHARED_DATASETS" in out.stderr
