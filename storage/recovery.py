"""Checking and rebuilding the catalog from the store's files (docs/storage.md "Recovery runbook").

    problems = check_store(catalog)                     # `salient catalog check`
    report = rebuild_catalog(catalog, quarantine=True)  # `salient catalog rebuild --quarantine`

The Parquet and JSON files are the truth; catalog.duckdb is an index over them. `check_store`
reads only: it lists every registered file that is missing or unreadable (footer check,
storage.views.check_file), every Parquet file the catalog does not know, and a catalog.duckdb
that does not open. `rebuild_catalog` re-registers everything readable in one transaction:

* an unreadable file is skipped and listed (with `quarantine`, moved to <store>/quarantine/<its
  path>), a file without salient's footer keys is skipped and named, never a bare KeyError;
* a catalog.duckdb that does not open is moved aside to catalog.duckdb.corrupt-<UTC time> (the
  report says where) and a new one is built from the files alone;
* a job keeps its state from the old catalog when that opens and none of its shards was lost;
  a job that lost shards is marked failed with a message naming them, so
  `salient attribute --resume JOB` re-attributes exactly those shards.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog, CatalogCorrupt, _now
from .objects import ObjectPath, copy_object
from .parquet_io import read_metadata, sweep_tmp
from .views import check_file

_DATASET_KEYS = ("salient.split", "salient.rows")
_SHARD_KEYS = ("salient.job_id", "salient.shard_index", "salient.rows", "salient.error_rows")


@dataclass
class Problem:
    """One thing `catalog check` found: kind is missing | unreadable | unknown | catalog."""

    kind: str
    path: str
    detail: str
    fix: str


@dataclass
class RebuildReport:
    counts: dict[str, int]
    skipped: list[Problem] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (store-relative path, new location)
    lost_shards: dict[str, list[int]] = field(default_factory=dict)   # job_id -> shard indices to re-attribute
    catalog_moved_to: str | None = None


def _fix_for(rel: str) -> str:
    if rel.startswith("rationales/"):
        return "`salient catalog rebuild --quarantine`, then `salient attribute --resume JOB` re-attributes the shard"
    return "`salient catalog rebuild --quarantine`, then `salient datasets add` the source again"


def check_store(catalog: Catalog) -> list[Problem]:
    """Every registered file that is missing or unreadable, every Parquet file the catalog does not know."""
    store = catalog.store
    problems: list[Problem] = []
    try:
        registered = [r["path"] for r in catalog.query("SELECT path FROM datasets UNION ALL SELECT path FROM shards")]
    except CatalogCorrupt as exc:
        problems.append(Problem("catalog", _shown(store, store.catalog_path), str(exc).split(". ")[0],
                                "`salient catalog rebuild` (moves it aside, rebuilds from the files)"))
        registered = []
    for rel in sorted(registered):
        reason = check_file(store.absolute(rel))
        if reason is not None:
            problems.append(Problem("missing" if reason == "missing" else "unreadable", rel, reason, _fix_for(rel)))
    known = set(registered)
    for path in _parquet_files(store):
        rel = store.relative(path)
        if rel not in known:
            problems.append(Problem("unknown", rel, "a Parquet file the catalog does not list",
                                    "`salient catalog rebuild` registers it if it is a salient file; otherwise move it "
                                    "out of the store"))
    return problems


def _parquet_files(store) -> list[Path]:
    if store.remote:  # one listing per prefix; an object store has no empty directories to test for
        return sorted(p for d in (store.datasets_dir, store.rationales_dir) for p in d.rglob("*.parquet"))
    return sorted(p for d in (store.datasets_dir, store.rationales_dir) if d.is_dir() for p in d.rglob("*.parquet"))


def _shown(store, path: Path) -> str:
    """A local file (the catalog) as the report names it: store-relative when it lies in the store."""
    try:
        return store.relative(path)
    except ValueError:  # catalog_path set outside a local store
        return str(path)


def _move_aside(catalog: Catalog) -> str:
    """Move an unopenable catalog.duckdb (and its .wal) to catalog.duckdb.corrupt-<UTC time>; never delete it."""
    path = catalog.store.catalog_path
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.rename(target)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        wal.rename(target.with_name(target.name + ".wal"))
    catalog._schema_ok = False
    return _shown(catalog.store, target)


def _quarantine(store, path: Path) -> str:
    target = store.root / "quarantine" / store.relative(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while target.exists():
        target = target.with_name(f"{target.name}.{n}")
        n += 1
    if isinstance(path, ObjectPath):  # no rename on object storage: copy, then delete the original
        copy_object(path, target)
        path.unlink()
    else:
        shutil.move(str(path), target)
    return store.relative(target)


def _footer(path: Path, keys: tuple[str, ...]) -> tuple[dict | None, str | None]:
    """(metadata, None) for a readable salient file, else (None, why it is skipped)."""
    reason = check_file(path)
    if reason is not None:
        return None, reason
    meta = read_metadata(path)
    missing = [k for k in keys if k not in meta]
    if missing:
        return None, f"not a salient file: its footer lacks {', '.join(missing)}"
    return meta, None


def rebuild_catalog(catalog: Catalog, *, quarantine: bool = False) -> RebuildReport:
    """Recreate every table from the files alone; see the module docstring."""
    store = catalog.store
    sweep_tmp(store.root)
    moved = None
    try:
        old_jobs = {j["job_id"]: j for j in catalog.query("SELECT * FROM jobs")}
        old_shards = {(r["job_id"], r["index"]) for r in catalog.query('SELECT job_id, "index" FROM shards')}
    except CatalogCorrupt:
        moved, old_jobs, old_shards = _move_aside(catalog), {}, set()
    report = RebuildReport(counts={"datasets": 0, "jobs": 0, "shards": 0, "runs": 0}, catalog_moved_to=moved)

    def skip(path: Path, reason: str) -> None:
        rel = store.relative(path)
        report.skipped.append(Problem("missing" if reason == "missing" else "unreadable", rel, reason, _fix_for(rel)))
        if quarantine and path.exists() and not reason.startswith("not a salient file"):
            report.quarantined.append((rel, _quarantine(store, path)))

    with catalog._transaction(files_changed=True) as con:
        for table in ("datasets", "jobs", "shards", "runs"):
            con.execute(f"DELETE FROM {table}")
        for part in sorted(store.datasets_dir.glob("*/*/part-*.parquet")):
            meta, reason = _footer(part, _DATASET_KEYS)
            if meta is None:
                skip(part, reason)
                continue
            con.execute(
                "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, FALSE, ?)",
                [meta.get("salient.dataset", part.parent.parent.name), meta.get("salient.version", part.parent.name),
                 meta["salient.split"], store.relative(part), int(meta["salient.rows"]), meta.get("salient.format"),
                 meta.get("salient.source"), meta.get("salient.content_hash"), meta.get("salient.created_at") or _now()],
            )
            report.counts["datasets"] += 1
        # the newest version of each (name, split) is the active one
        con.execute("UPDATE datasets SET active = TRUE WHERE (name, split, created_at) IN "
                    "(SELECT name, split, max(created_at) FROM datasets GROUP BY name, split)")
        for job_dir in _job_dirs(store):
            spec_path = job_dir / "job.json"
            if not spec_path.exists():
                for shard in sorted(job_dir.glob("shard-*.parquet")):
                    report.skipped.append(Problem("unknown", store.relative(shard), f"no job.json beside it in {store.relative(job_dir)}",
                                                  "restore job.json, or move the directory out of the store"))
                continue
            record = _json(spec_path, report)
            if record is None:
                continue
            report.counts["jobs"] += 1
            report.counts["shards"] += _rebuild_job(con, store, spec_path, record, old_jobs, old_shards, skip, report)
        for run_path in sorted(store.runs_dir.glob("*/run.json")):
            run = _json(run_path, report)
            if run is not None:
                catalog.register_run(run)
                report.counts["runs"] += 1
        for pointer in sorted((store.runs_dir / "_current").glob("*.json")):
            p = _json(pointer, report)
            if p is None:
                continue
            con.execute("UPDATE runs SET is_current = (run_id = ?) WHERE dataset = ? AND student = ?",
                        [p["run_id"], p["dataset"], p["student"]])
    return report


def _job_dirs(store) -> list[Path]:
    """rationales/dataset=*/job=*: directories of a local store; for an s3:// store the prefixes of its
    objects (an object store lists keys, not directories)."""
    if store.remote:
        return sorted({p.parent for p in store.rationales_dir.glob("dataset=*/job=*/*")})
    return sorted(p for p in store.rationales_dir.glob("dataset=*/job=*") if p.is_dir())


def _json(path: Path, report: RebuildReport) -> dict | None:
    """A JSON record (job.json, run.json, a promotion pointer), or None and a listed problem when unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        report.skipped.append(Problem("unreadable", str(path), f"not readable JSON ({exc})",
                                      "restore it from a backup; without it the job or run is not in the catalog"))
        return None


def _rebuild_job(con, store, spec_path: Path, record: dict, old_jobs: dict, old_shards: set, skip,
                 report: RebuildReport) -> int:
    job_id = record["job_id"]
    total_shards = record.get("shards_total")
    done_rows = error_rows = 0
    present: set[int] = set()
    for shard in sorted(spec_path.parent.glob("shard-*.parquet")):
        meta, reason = _footer(shard, _SHARD_KEYS)
        if meta is None or meta["salient.job_id"] != job_id:
            skip(shard, reason or f"not a shard of {job_id} (its footer names {meta['salient.job_id']})")
            continue
        index, rows, errs = int(meta["salient.shard_index"]), int(meta["salient.rows"]), int(meta["salient.error_rows"])
        con.execute("INSERT INTO shards VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [job_id, index, store.relative(shard), rows, errs, shard.stat().st_size,
                     meta.get("salient.created_at") or _now()])
        present.add(index)
        done_rows += rows
        error_rows += errs
    # lost: committed before (old catalog) or present as a damaged file, and not readable now
    damaged = {int(p.path.rsplit("shard-", 1)[1].split(".")[0]) for p in report.skipped
               if p.path.startswith(store.relative(spec_path.parent) + "/shard-") and p.kind != "unknown"}
    lost = sorted(i for i in ({i for (j, i) in old_shards if j == job_id} | damaged) - present
                  if total_shards is None or i < total_shards)
    old = old_jobs.get(job_id)
    if lost:
        report.lost_shards[job_id] = lost
        status = "failed"
        message = (f"rebuilt from files: shard(s) {', '.join(map(str, lost))} lost (missing or unreadable); "
                   f"`salient attribute --resume {job_id}` re-attributes exactly those")
    elif old is not None:
        status, message = old["status"], old["message"]
    else:  # only the files survive: a job with all its shards is succeeded; otherwise interrupted (resumable)
        status = "succeeded" if total_shards is not None and len(present) >= total_shards else "failed"
        message = "" if status == "succeeded" else (f"rebuilt from files: {len(present)}/{total_shards} shards committed; "
                                                     f"resume with `salient attribute --resume {job_id}`")
    con.execute(
        "INSERT INTO jobs (job_id, dataset, split, status, spec, idempotency_key, total_rows, done_rows, error_rows,"
        " shards_total, shards_done, message, created_at, started_at, finished_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [job_id, record["dataset"], record.get("split"), status, json.dumps(record.get("spec", {})),
         record.get("idempotency_key"), record.get("total_rows"), done_rows, error_rows, total_shards, len(present),
         message, record.get("created_at") or _now(), (old or {}).get("started_at"),
         (old or {}).get("finished_at") if not lost else _now(), _now()],
    )
    return len(present)
