"""The end-to-end demo behind `make demo` / `salient demo`: every stage of salient, for real, on CPU.

    salient --store ./salient-data demo [--datasets-dir ../shared/datasets] [--rows 400]

1. ingest the four shared datasets (CQA, SVAMP, e-SNLI, ANLI r1) into the store;
2. build a small seq2seq teacher from a config with a locally trained word-level tokenizer (no
   download) and fit it briefly on e-SNLI test rows (the shared e-SNLI has no train split);
3. run an attribution job on a local Ray cluster over the first `rows` e-SNLI validation rows
   (saliency, k=3, shards of `rows/4`), each shard written atomically and registered in the catalog;
4. answer SQL over the rationale tables through the read-only sandbox;
5. train a pretrained student (all-MiniLM-L6-v2, first 2 layers) with and without the teacher's
   rationales on the planted-cue task and print both with the gap measured in this run
   (student_trainer.compare.demo_student_stage); register the run and promote it.

Re-running is cheap: ingest is a no-op for unchanged files, the job id is derived from its spec so a
finished job is skipped, and the teacher is rebuilt only when missing. The teacher is a stand-in
fitted for a minute: it learns e-SNLI's lexical cues (negations, "sleeping", ...) and little else, so
the numbers show the pipeline working, not distillation quality (benchmarks/distill_quality.py
measures that).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from storage import Catalog

DSS_DATASETS = (("cqa", "cqa", "cqa"), ("svamp", "svamp", "svamp"), ("esnli", "esnli", "esnli"), ("anli1", "anli1", "anli"))


def default_datasets_dir() -> Path:
    """$SALIENT_SHARED_DATASETS, else ../shared/datasets beside the working directory or the repo."""
    env = os.environ.get("SALIENT_SHARED_DATASETS")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base.parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "datasets"


def run_demo(catalog: Catalog, *, datasets_dir: Path, rows: int = 400, teacher_steps: int = 1200,
             student_steps: int = 60, fit_rows_n: int = 3000, say: Callable[[str], None] = print) -> dict:
    """Run the five stages; returns a summary dict (also printed step by step through `say`)."""
    from attribution_worker.jobs import JobSpec, run_job
    from attribution_worker.local import dataset_rows
    from attribution_worker.tiny import build_tiny_teacher
    from attribution_worker.tiny_train import train_tiny_teacher
    from storage.ingest import IngestOptions, ingest
    from storage.sql import run_sql
    from student_trainer.compare import demo_student_stage

    if not datasets_dir.is_dir():
        raise FileNotFoundError(f"{datasets_dir} not found: pass --datasets-dir or set SALIENT_SHARED_DATASETS")
    if rows < 40:
        raise ValueError(f"--rows {rows} is too small for a train/validation split: use at least 40")
    summary: dict = {}
    t0 = time.perf_counter()

    say("== 1/5 ingest the shared datasets")
    for name, folder, fmt in DSS_DATASETS:
        for part in ingest(catalog, name, datasets_dir / folder, IngestOptions(format=fmt)):
            say(f"   {name:6s} {part.split:6s} {part.rows:6d} rows  {part.status}")
    summary["examples"] = catalog.query("SELECT count(*) AS n FROM examples")[0]["n"]

    say("== 2/5 build and fit a small teacher (from a config, no download)")
    teacher_dir = catalog.store.root / "demo" / "teacher-t5"
    fit_rows = dataset_rows(catalog, "esnli", split="test", limit=fit_rows_n)
    job_rows = dataset_rows(catalog, "esnli", split="valid", limit=rows)
    if not (teacher_dir / "config.json").exists():
        texts = [r["input"] + " " + r["target"] for r in fit_rows + job_rows]
        build_tiny_teacher(teacher_dir, kind="seq2seq", texts=texts, d_model=64, layers=2, heads=4, seed=0)
        stats = train_tiny_teacher(teacher_dir, [(r["input"], r["target"]) for r in fit_rows], template="nli",
                                   steps=teacher_steps, batch_size=32, lr=1e-3, seed=0)
        say(f"   fitted on {len(fit_rows)} rows in {stats['seconds']} s (train accuracy {stats['train_accuracy']:.2f})")
    say(f"   teacher: {teacher_dir}")

    say(f"== 3/5 attribution job on local Ray: {len(job_rows)} e-SNLI rows, saliency, k=3")
    spec = JobSpec(dataset="esnli", split="valid", teacher=str(teacher_dir), method="saliency", k=3, limit=rows,
                   shard_size=max(10, rows // 4), actors=1)
    job = run_job(catalog, spec, progress=lambda e: say(
        f"   shard {e['shard']}: {e['shards_done']}/{e['shards_total']} shards, {e['rows_done']}/{e['total_rows']} rows"
        if e["kind"] == "shard" else f"   retry shard {e['shard']}"))
    say(f"   job {job['job_id']}: {job['status']}, {job['rows']} rows in {job['shards']} shards")
    summary["job"] = job

    say("== 4/5 SQL over the rationale tables (read-only sandbox)")
    queries = {
        "top rationale words": "SELECT token, count(*) AS n FROM rationale_tokens GROUP BY token ORDER BY n DESC LIMIT 8",
        "faithfulness": "SELECT count(*) AS rows, round(avg(comprehensiveness), 3) AS comprehensiveness, "
                        "round(avg(sufficiency), 3) AS sufficiency, "
                        "round(avg(teacher_correct::INT), 3) AS teacher_accuracy FROM rationales",
        "a rationale": "SELECT example_id, teacher_output, target_text, rationale_text FROM rationales LIMIT 3",
    }
    for title, sql in queries.items():
        result = run_sql(catalog, sql)
        say(f"   -- {title}: {sql}")
        say("   " + " | ".join(result.columns))
        for row in result.rows:
            say("   " + " | ".join("" if v is None else str(v) for v in row))
    summary["rationales"] = catalog.query("SELECT count(*) AS n FROM rationales")[0]["n"]

    say("== 5/5 distill a pretrained student with and without rationales (student_trainer.compare)")
    stage = demo_student_stage(catalog, say=say, steps=student_steps)
    say(f"   run {stage['run_id']} -> {stage['run_dir']} (promoted: {stage['promoted']}; {stage['promotion']})")
    summary["run"] = {"run_id": stage["run_id"], "promoted": stage["promoted"],
                      "val_accuracy": stage["val"],
                      "test_accuracy": {"student": stage["with_rationales"], "baseline": stage["without"]},
                      "gap_points": stage["gap"]}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    say(f"== done in {summary['seconds']} s. Try: salient --store {catalog.store.root} sql "
        "\"SELECT rationale_text FROM rationales LIMIT 5\"")
    return summary
