"""End-to-end job throughput: rows/s through Ray, shards and the catalog vs. the bare engine, same rows, same run.

    .venv/bin/python benchmarks/jobs.py                                  # tiny T5, 2,000 rows, shard size 1,000
    .venv/bin/python benchmarks/jobs.py --model t5-small --rows 3000 --threads 2 --repeats 3
    .venv/bin/python benchmarks/jobs.py --json out.json

`engine`: AttributionEngine.attribute in this process, called shard by shard (the same batching as
the job), torch threads = --threads, teacher load excluded. `job`: attribution_worker.jobs.run_job on
a fresh local Ray cluster (num_cpus = --threads) with one TeacherActor reserving --threads CPUs:
Ray dispatch, the Arrow table's trip back, the atomic Parquet write and the catalog commit of every
shard. Runs alternate engine, job, engine, job, ..., engine. A job row's `seconds` runs from the
moment its actor is ready (its note adds the actor start + teacher load); overhead_pct = job seconds /
mean(engine seconds of the runs either side) - 1 (positive: the job is slower). The note also gives
the CPU overhead, (actor + driver CPU seconds) / engine CPU seconds - 1, which other load on a shared
machine disturbs far less than wall time. Rows are CQA-shaped (benchmarks/attribution.make_rows);
models are built from configs with random weights (benchmarks/attribution.SHAPES). The lead's
benchmarks/attribution.py calls run().
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _teacher(root: Path, model: str, rows: list[dict]) -> str:
    from attribution import SHAPES  # benchmarks/attribution.py

    from attribution_worker.tiny import build_tiny_teacher

    texts = [r["input"] for r in rows[:500]] + [c for r in rows[:500] for c in r["choices"]]
    return str(build_tiny_teacher(root / model, kind="seq2seq", texts=texts, seed=0, **SHAPES[model]))


def _engine(config: dict, rows: list[dict], shard_size: int, threads: int) -> tuple[float, float]:
    """(seconds, CPU seconds of this process) for the bare engine over `rows`, shard by shard."""
    import torch

    from attribution_worker.engine import AttributionConfig, AttributionEngine

    torch.set_num_threads(threads)
    engine = AttributionEngine(AttributionConfig(**config))
    engine.attribute(rows[:8])  # warm-up, like the actor's first batch
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(rows), shard_size):
        engine.attribute(rows[i:i + shard_size])
    return time.perf_counter() - t0, time.process_time() - c0


def _job(store_root: Path, spec, rows: list[dict], threads: int, job_id: str) -> dict:
    import ray

    from attribution_worker.jobs import run_job
    from storage import Catalog, Store
    from storage.ingest import IngestOptions, ingest

    store = Store.open(store_root)
    with Catalog.open(store) as cat:
        if not cat.dataset_parts("bench"):  # through real ingest, as `salient datasets add` writes it
            src = store_root.parent / "bench.jsonl"
            src.write_text("".join(json.dumps({k: r[k] for k in ("example_id", "input", "target", "choices")}) + "\n"
                                   for r in rows))
            ingest(cat, "bench", src, IngestOptions(format="jsonl", split="test"))
        ray.init(num_cpus=threads, include_dashboard=False, log_to_driver=False)
        try:
            return run_job(cat, spec, job_id=job_id)
        finally:
            ray.shutdown()


def run(*, model: str = "tiny", n_rows: int = 2000, shard_size: int = 1000, threads: int = 2, k: int = 5,
        max_new_tokens: int = 4, faithfulness: bool = True, repeats: int = 2) -> list[dict]:
    """Time the bare engine and a Ray job on the same rows, interleaved: engine, job, engine, job, ..., engine.

    Returns one dict per measurement plus a summary row per job: wall overhead (job vs. the mean of the
    engine runs either side of it) and CPU overhead ((actor + driver CPU s) / engine CPU s - 1), which is
    less sensitive to other load on a shared machine.
    """
    import os
    import statistics

    from attribution import make_rows

    from attribution_worker.jobs import JobSpec

    rows = make_rows(n_rows)
    out: list[dict] = []
    common = {"model": model, "rows": n_rows, "shard_size": shard_size, "threads": threads}
    with tempfile.TemporaryDirectory(prefix="salient-jobs-bench-") as tmp:
        tmp = Path(tmp)
        teacher = _teacher(tmp, model, rows)
        spec = JobSpec(dataset="bench", teacher=teacher, k=k, max_new_tokens=max_new_tokens, faithfulness=faithfulness,
                       shard_size=shard_size, actors=1, num_cpus_per_actor=threads, template="cqa")
        config = {**spec.engine_config("cqa"), "device": "cpu"}
        engines = [_engine(config, rows, shard_size, threads)]
        out.append({**common, "mode": "engine", "seconds": round(engines[-1][0], 2),
                    "rows_per_s": round(n_rows / engines[-1][0], 1), "cpu_s": round(engines[-1][1], 1),
                    "overhead_pct": None, "note": f"load {os.getloadavg()[0]:.1f}"})
        for r in range(repeats):
            job = _job(tmp / "store", spec, rows, threads, job_id=f"bench-{r}")
            engines.append(_engine(config, rows, shard_size, threads))
            steady = job["seconds"] - job["startup_s"]
            ref = statistics.mean(e[0] for e in engines[-2:])
            ref_cpu = statistics.mean(e[1] for e in engines[-2:])
            job_cpu = (job["actor_cpu_s"] or float("nan")) + job["driver_cpu_s"]
            out.append({**common, "mode": "job", "seconds": round(steady, 2), "rows_per_s": round(n_rows / steady, 1),
                        "cpu_s": round(job_cpu, 1), "overhead_pct": round(100 * (steady / ref - 1), 1),
                        "note": f"{job['shards']} shards; cpu overhead {100 * (job_cpu / ref_cpu - 1):.1f}% "
                                f"(actor {job['actor_cpu_s']:.1f} s + driver {job['driver_cpu_s']:.1f} s); "
                                f"+{job['startup_s']:.1f} s actor start + teacher load; load {os.getloadavg()[0]:.1f}"})
            out.append({**common, "mode": "engine", "seconds": round(engines[-1][0], 2),
                        "rows_per_s": round(n_rows / engines[-1][0], 1), "cpu_s": round(engines[-1][1], 1),
                        "overhead_pct": None, "note": f"load {os.getloadavg()[0]:.1f}"})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny", help="tiny | t5-small | flan-t5-xl (benchmarks/attribution.SHAPES)")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=2, help="job runs, each between two engine runs")
    p.add_argument("--shard-size", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the engine = CPUs of the one actor")
    p.add_argument("--max-new-tokens", type=int, default=4)
    p.add_argument("--no-faithfulness", action="store_true")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    a = p.parse_args()
    rows = run(model=a.model, n_rows=a.rows, shard_size=a.shard_size, threads=a.threads,
               max_new_tokens=a.max_new_tokens, faithfulness=not a.no_faithfulness, repeats=a.repeats)
    cols = ["model", "mode", "rows", "shard_size", "threads", "seconds", "rows_per_s", "cpu_s", "overhead_pct", "note"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("" if r[c] is None else str(r[c]) for c in cols) + " |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
