"""Bounded memory: attribute N rows on the tiny teacher, locally and as a Ray job; peak RSS per process.

    .venv/bin/python benchmarks/attribution_scale.py                        # 10k and 100k rows, local + ray
    .venv/bin/python benchmarks/attribution_scale.py --rows 20000 --modes local,ray --threads 1

For each size (--rows / 10 and --rows) and each mode, a fresh child process runs the job over a
dataset ingested through `storage.ingest` (JSONL -> Parquet parts, 64k-row row groups):

* local: `attribution_worker.local.run_local` in the child (the `attribute-local` path).
* ray:   `attribution_worker.jobs.run_job` with the child as the driver and one TeacherActor.

Peak RSS is each process's VmHWM (/proc/self/status; not ru_maxrss, which Linux carries across
execve from the parent that ingested the rows): the child (local executor or Ray driver) and, for
ray, the actor (asked at the last shard). Bounded memory means these are flat in the number of rows: the
`x` columns give peak RSS at --rows over peak RSS at --rows / 10 (1.0 = flat). Rows are CQA-shaped
(benchmarks/attribution.make_rows); the teacher is a tiny random T5 built from a config.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM of its address space. Not ru_maxrss, which Linux carries
    across execve, so a child started by a big parent would report the parent's RSS."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _spec(dataset: str, teacher: str, args) -> dict:
    return dict(dataset=dataset, teacher=teacher, method=args.method, k=5, max_new_tokens=2,
                faithfulness=args.faithfulness, shard_size=args.shard_size, template="cqa",
                actors=1, num_cpus_per_actor=args.threads, device="cpu")


def child(args) -> None:
    """One measured run in this (fresh) process; prints one JSON line."""
    import torch

    from attribution_worker.jobs import JobSpec
    from storage import Catalog, Store

    torch.set_num_threads(args.threads)
    spec = JobSpec(**_spec(args.dataset, args.teacher, args))
    actor_rss: list[float] = []
    t0 = time.perf_counter()
    with Catalog.open(Store.open(args.store)) as cat:
        if args.child == "local":
            from attribution_worker.local import run_local

            summary = run_local(cat, spec, job_id=f"scale-local-{args.dataset}")
        else:
            import ray

            from attribution_worker.cluster import connect
            from attribution_worker.jobs import run_job

            def on_shard(event):
                if event["kind"] == "shard" and event["shards_done"] == event["shards_total"]:
                    actor_rss.extend(ray.get([a.peak_rss_mb.remote() for a in event["actors"]]))

            started = connect(num_cpus=args.threads + 1)
            try:
                summary = run_job(cat, spec, job_id=f"scale-ray-{args.dataset}", progress=on_shard)
            finally:
                if started:
                    ray.shutdown()
    seconds = time.perf_counter() - t0
    assert summary.get("committed_now", summary.get("attributed_now")), "nothing was attributed (a finished job?)"
    print(json.dumps({"mode": args.child, "rows": summary["rows"], "seconds": round(seconds, 1),
                      "rows_per_s": round(summary["rows"] / seconds, 1), "process_rss_mb": round(_peak_rss_mb(), 1),
                      "actor_rss_mb": round(max(actor_rss), 1) if actor_rss else None}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000, help="the larger size; the smaller is rows / 10")
    p.add_argument("--modes", default="local,ray")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard-size", type=int, default=1000)
    p.add_argument("--method", default="saliency")
    p.add_argument("--faithfulness", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    for name in ("store", "dataset", "teacher"):
        p.add_argument(f"--{name}", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    from attribution import make_rows  # benchmarks/attribution.py

    from attribution_worker.tiny import build_tiny_teacher
    from storage import Catalog, Store
    from storage.ingest import IngestOptions, ingest

    sizes = [max(1, args.rows // 10), args.rows]
    results = []
    with tempfile.TemporaryDirectory(prefix="salient-scale-") as tmp:
        tmp = Path(tmp)
        sample = make_rows(500)
        teacher = str(build_tiny_teacher(tmp / "teacher", kind="seq2seq", texts=[r["input"] for r in sample]
                                         + [c for r in sample for c in r["choices"]], seed=0, d_model=32, layers=2,
                                         heads=2))
        store = Store.open(tmp / "store")
        with Catalog.open(store) as cat:
            for n in sizes:
                src = tmp / f"rows{n}.jsonl"
                with open(src, "w") as f:
                    for r in make_rows(n):
                        f.write(json.dumps({"example_id": r["example_id"], "input": r["input"], "target": r["target"],
                                            "choices": r["choices"]}) + "\n")
                ingest(cat, f"scale{n}", src, IngestOptions(format="jsonl", split="test"))
        for mode in args.modes.split(","):
            for n in sizes:
                cmd = [sys.executable, __file__, "--child", mode, "--store", str(store.root), "--dataset", f"scale{n}",
                       "--teacher", teacher, "--threads", str(args.threads), "--shard-size", str(args.shard_size),
                       "--method", args.method, "--faithfulness" if args.faithfulness else "--no-faithfulness"]
                env = {**os.environ, "PYTHONPATH": str(ROOT)}
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
                if out.returncode:
                    sys.exit(f"{mode} {n} rows failed:\n{out.stderr[-3000:]}")
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(f"peak RSS per process, tiny T5, {args.method}, faithfulness {'on' if args.faithfulness else 'off'}, "
          f"shard size {args.shard_size}, threads {args.threads}")
    print("| mode | rows | seconds | rows/s | driver/local peak RSS MB | actor peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['rows']} | {r['seconds']} | {r['rows_per_s']} | {r['process_rss_mb']} | "
              f"{r['actor_rss_mb'] if r['actor_rss_mb'] is not None else '-'} |")
    for mode in args.modes.split(","):
        small, big = [r for r in results if r["mode"] == mode]
        ratio = big["process_rss_mb"] / small["process_rss_mb"]
        line = f"{mode}: rows x{big['rows'] / small['rows']:.0f} -> process peak RSS x{ratio:.2f}"
        if big["actor_rss_mb"]:
            line += f", actor peak RSS x{big['actor_rss_mb'] / small['actor_rss_mb']:.2f}"
        print(line)


if __name__ == "__main__":
    main()
