"""`salient catalog check|rebuild|show` and `salient jobs ls|show|cancel`."""
from __future__ import annotations

import json

from .common import open_catalog, print_rows


def register(sub) -> None:
    p = sub.add_parser("catalog", help="the DuckDB index over the store's Parquet files")
    csub = p.add_subparsers(dest="catalog_command", metavar="ACTION")
    csub.required = True
    r = csub.add_parser("rebuild", help="recreate catalog.duckdb's tables from the Parquet/JSON files alone "
                                        "(skips and lists unreadable files)")
    r.add_argument("--quarantine", action="store_true",
                   help="move unreadable files to <store>/quarantine/<their path> (default: leave them, listed)")
    r.set_defaults(func=cmd_rebuild)
    c = csub.add_parser("check", help="list missing or unreadable files and files the catalog does not know "
                                      "(exit 1 when any)")
    c.set_defaults(func=cmd_check)
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
    from storage.recovery import rebuild_catalog

    with open_catalog(args) as cat:
        report = rebuild_catalog(cat, quarantine=args.quarantine)
    if report.catalog_moved_to:
        print(f"catalog.duckdb could not be opened: moved aside to {report.catalog_moved_to} (kept, not deleted); "
              "building a new one from the files")
    print("rebuilt catalog from files: " + ", ".join(f"{v} {k}" for k, v in report.counts.items()))
    if report.skipped:
        print(f"skipped {len(report.skipped)} file(s):")
        _print_problems(report.skipped)
    for rel, to in report.quarantined:
        print(f"quarantined {rel} -> {to}")
    for job_id, lost in report.lost_shards.items():
        print(f"job {job_id} lost shard(s) {', '.join(map(str, lost))}: `salient attribute --resume {job_id}` "
              "re-attributes exactly those")
    return 0


def cmd_check(args) -> int:
    from storage.recovery import check_store

    with open_catalog(args) as cat:
        problems = check_store(cat)
    if not problems:
        print(f"{cat.store.root}: every registered file is readable and every Parquet file is registered")
        return 0
    _print_problems(problems)
    print(f"{len(problems)} problem(s); see docs/storage.md 'Recovery runbook'")
    return 1


def _print_problems(problems) -> None:
    """One block per file, paths in full (a table would cut them)."""
    for p in problems:
        print(f"{p.kind:<10}  {p.path}\n            {p.detail}\n            fix: {p.fix}")


def cmd_show(args) -> int:
    with open_catalog(args) as cat:
        rows = [{"table": t, "rows": cat.query(f"SELECT count(*) AS n FROM {t}")[0]["n"]}
                for t in ("datasets", "jobs", "shards", "runs")]
        # row counts of the views from the catalog (no file is read, so a damaged one does not stop `show`)
        rows += [{"table": "examples", "rows": cat.query("SELECT coalesce(sum(rows), 0) AS n FROM datasets WHERE active")[0]["n"]},
                 {"table": "rationales", "rows": cat.query("SELECT coalesce(sum(rows), 0) AS n FROM shards")[0]["n"]}]
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
