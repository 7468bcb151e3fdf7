"""The demo through the service (`salient demo --via-service`) at a small size: every stage over HTTP, the report."""
from __future__ import annotations

import re

import pytest


@pytest.mark.slow
def test_service_demo_runs_every_stage_and_writes_the_report(tmp_path, shared_datasets):
    from api.demo import DemoConfig
    from api.demo_service import run_service_demo

    lines: list[str] = []
    report = tmp_path / "store" / "demo-report.html"  # the default: in the store, not the working directory
    cfg = DemoConfig(teacher_rows=200, teacher_steps=4, student_rows=40, val_rows=20, test_rows=20, student_steps=6)
    out = run_service_demo(str(tmp_path / "store"), datasets_dir=shared_datasets, cfg=cfg, say=lines.append)
    assert set(out["times"]) == {"start service", "1 upload", "2 teacher", "3 attribute", "4 sql", "5 student", "total"}
    assert out["report"] == str(report)
    html = report.read_text()
    assert html.count('class="heat"') == 12 and 'class="rationale"' in html
    assert "esnli-demo / every split" in html  # the job covers the slice's three splits
    assert "mean comprehensiveness" in html and "Students" in html and "<script" not in html
    assert "the teacher&#x27;s rationales + distribution" in html and f"gap {out['run']['gap']:+.1f} points" in html
    assert any(line.strip().startswith("succeeded: 4/4 shards, 80/80 rows") for line in lines), lines
    assert any(re.fullmatch(r"esnli-demo +train +40 rows +added", line.strip()) for line in lines), lines
