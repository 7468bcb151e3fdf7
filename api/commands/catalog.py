"""`salient catalog rebuild|show` and `salient jobs ls|show|cancel`."""
from __future__ import annotations

import json

from .common import open_catalog, print_rows


def register(sub) -> None:
    p = sub.add_parser("catalog", help="the DuckDB index over the store's Parquet files")
    csub = p.add_subparsers(dest="catalog_command", metavar="ACTION")
    csub.required = True
    r = csub.add_parser("rebuild", help="recreate catalog.duckdb's tables from the Parquet/JSON files alone")
    r.set_defaults(func=cmd_rebuild)
    s = csub.add_parser("show", help="counts of datasets, jobs, shards and runs")
    s.set_defaults(func=cmd_show)

    j = sub.add_parser("jobs", help="attribution jobs recorded in the catalog")
    jsub = j.add_subparsers(dest="jobs_command", metavar="ACTION")
    jsub.required = True
    ls = jsub.add_parser("ls", help="list jobs")
    ls.add_argument("--status", choices=["queued", "running", "cancelling", "succeeded", "failed", "cancelled"])
    ls.set_defaults(func=cmd_jobs_ls)
    show = jsub.add_parser("show", help="one job with its spec and shards")
    show.add_argument("job_id")
    show.set_defaults(func=cmd_jobs_show)
    cancel = jsub.add_parser("cancel", help="ask a job to stop (its driver ends it cancelled; committed shards stay)")
    cancel.add_argument("job_id")
    cancel.set_defaults(func=cmd_jobs_cancel)


def cmd_rebuild(args) -> int:
    with open_catalog(args) as cat:
        counts = cat.rebuild()
    print("rebuilt catalog from files: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def cmd_show(args) -> int:
    with open_catalog(args) as cat:
        rows = [
            {"table": t, "rows": cat.query(f"SELECT count(*) AS n FROM {t}")[0]["n"]}
            for t in ("datasets", "jobs", "shards", "runs", "examples", "rationales")
        ]
        print(f"store: {cat.store.root}")
        print_rows(rows)
    return 0


def cmd_jobs_ls(args) -> int:
    with open_catalog(args) as cat:
        print_rows(cat.jobs(args.status), columns=[
            "job_id", "dataset", "split", "status", "done_rows", "total_rows", "error_rows", "shards_done", "shards_total", "message"])
    return 0


def cmd_jobs_show(args) -> int:
    with open_catalog(args) as cat:
        job = cat.get_job(args.job_id)
        if job is None:
            raise ValueError(f"no job {args.job_id!r}: list jobs with `salient jobs ls`")
        print(json.dumps(job, indent=2, default=str))
        print_rows(cat.job_shards(args.job_id), columns=["index", "rows", "error_rows", "bytes", "path"])
    return 0


def cmd_jobs_cancel(args) -> int:
    from attribution_worker.jobs import request_cancel
    from storage import JobStateError

    with open_catalog(args) as cat:
        try:
            job = request_cancel(cat, args.job_id)
        except JobStateError as exc:
            raise ValueError(str(exc)) from None
    print(json.dumps({"job_id": job["job_id"], "status": job["status"],
                      "note": "the job's driver stops at its next poll and marks it cancelled; committed shards stay"}))
    return 0
