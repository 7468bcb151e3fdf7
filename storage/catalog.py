"""The DuckDB catalog: an index over the store's Parquet files (which stay the truth).

Tables: datasets, jobs, shards, runs. Views: examples (every row of every active dataset
part), rationales (every row of every committed shard), rationale_tokens (one row per
rationale word). Exactly one process opens catalog.duckdb read-write (DuckDB's file lock);
a second one gets `CatalogLocked` naming the holder. Job state changes are the named
`mark_*` functions below and nowhere else (STYLE.md 5).

    cat = Catalog.open(Store.open("./salient-data"))
    job = cat.create_job(job_id, dataset="cqa", split="train", spec={...}, total_rows=9741)
    cat.mark_running(job_id)
    cat.commit_shard(job_id, index=0, path=..., rows=1000, error_rows=2, bytes_=123456)
    cat.mark_succeeded(job_id)
"""
from __future__ import annotations

import datetime as dt
import json
import re
import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .parquet_io import read_metadata, sweep_tmp, write_json_atomic
from .schemas import DATASET_SCHEMA, RATIONALE_SCHEMA
from .store import Store

JOB_STATES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")
TERMINAL_STATES = ("succeeded", "failed", "cancelled")

_DDL = """
CREATE TABLE IF NOT EXISTS datasets (
    name VARCHAR NOT NULL, version VARCHAR NOT NULL, split VARCHAR NOT NULL,
    path VARCHAR NOT NULL, rows BIGINT NOT NULL, format VARCHAR, source VARCHAR,
    content_hash VARCHAR, active BOOLEAN NOT NULL DEFAULT TRUE, created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version, split)
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id VARCHAR PRIMARY KEY, dataset VARCHAR NOT NULL, split VARCHAR, status VARCHAR NOT NULL,
    spec JSON, idempotency_key VARCHAR, total_rows BIGINT, done_rows BIGINT DEFAULT 0,
    error_rows BIGINT DEFAULT 0, shards_total INTEGER, shards_done INTEGER DEFAULT 0,
    message VARCHAR, created_at TIMESTAMPTZ NOT NULL, started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ, updated_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS shards (
    job_id VARCHAR NOT NULL, "index" INTEGER NOT NULL, path VARCHAR NOT NULL, rows BIGINT NOT NULL,
    error_rows BIGINT NOT NULL, bytes BIGINT NOT NULL, created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, "index")
);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, dataset VARCHAR, student VARCHAR, status VARCHAR,
    path VARCHAR, config JSON, metrics JSON, val_score DOUBLE, snapshot VARCHAR,
    is_current BOOLEAN DEFAULT FALSE, created_at TIMESTAMPTZ, finished_at TIMESTAMPTZ
);
"""

_RUN_COLUMNS = (
    "run_id", "dataset", "student", "status", "path", "config", "metrics",
    "val_score", "snapshot", "is_current", "created_at", "finished_at",
)


class CatalogError(RuntimeError):
    """A catalog operation was refused; the message says why and what to do."""


class CatalogLocked(CatalogError):
    """Another process holds catalog.duckdb read-write."""


class JobStateError(CatalogError):
    """A job transition that its current state does not allow."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def view_statements(store: Store, dataset_parts: list[str], shard_paths: list[str]) -> list[str]:
    """SQL creating the examples / rationales / rationale_tokens views over explicit file lists.

    Paths are store-relative; they are made absolute here. With no files, each view selects from
    an empty typed table (`_empty_examples`, `_empty_rationales`) that the caller must create.
    """
    parts = [str(store.absolute(p)) for p in dataset_parts]
    shards = [str(store.absolute(p)) for p in shard_paths]
    examples = (
        f"SELECT * FROM read_parquet({_sql_list(parts)}, union_by_name=true)" if parts else "SELECT * FROM _empty_examples"
    )
    rationales = (
        f"SELECT * FROM read_parquet({_sql_list(shards)}, union_by_name=true)" if shards else "SELECT * FROM _empty_rationales"
    )
    return [
        f"CREATE OR REPLACE VIEW examples AS {examples}",
        f"CREATE OR REPLACE VIEW rationales AS {rationales}",
        "CREATE OR REPLACE VIEW rationale_tokens AS "
        "SELECT example_id, dataset, split, job_id, method, teacher_model, "
        "unnest(rationale) AS token, unnest(generate_series(1, len(rationale))) AS position "
        "FROM rationales WHERE rationale IS NOT NULL AND len(rationale) > 0",
    ]


def create_empty_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The typed empty tables the views fall back to when no file exists yet."""
    empty_examples = DATASET_SCHEMA.empty_table()
    empty_rationales = RATIONALE_SCHEMA.empty_table()
    con.register("__ex", empty_examples)
    con.register("__ra", empty_rationales)
    # ingested parts carry a `dataset` column beside DATASET_SCHEMA (storage.ingest); so does the fallback
    con.execute("CREATE OR REPLACE TABLE _empty_examples AS SELECT *, NULL::VARCHAR AS dataset FROM __ex")
    con.execute("CREATE OR REPLACE TABLE _empty_rationales AS SELECT * FROM __ra")
    con.unregister("__ex")
    con.unregister("__ra")


class Catalog:
    """The single read-write owner of catalog.duckdb. Thread-safe within its process."""

    def __init__(self, store: Store, con: duckdb.DuckDBPyConnection):
        self.store = store
        self._con = con
        self._lock = threading.RLock()
        self.generation = 0  # bumped on every change that alters a view's file list
        self.version = 0  # bumped on every write (readers such as the SQL sandbox re-copy tables on change)

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, store: Store | str | None = None) -> "Catalog":
        if not isinstance(store, Store):
            store = Store.open(store)
        try:
            con = duckdb.connect(str(store.catalog_path))
        except duckdb.IOException as exc:  # the lock is held by another process
            msg = str(exc)
            holder = re.search(r"\(PID (\d+)\)", msg)
            who = f"process {holder.group(1)}" if holder else "another process"
            raise CatalogLocked(
                f"{store.catalog_path} is open read-write by {who}. Only one process may write the catalog: "
                "stop that process (or send the request to the running service) and try again."
            ) from exc
        cat = cls(store, con)
        with cat._lock:
            con.execute(_DDL)
            if not cat._has_table("_empty_rationales"):
                create_empty_tables(con)
            cat.refresh_views()
        return cat

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _has_table(self, name: str) -> bool:
        return bool(self._con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[0][0])

    # ---------------------------------------------------------------- reading
    def query(self, sql: str, params: list | None = None) -> list[dict[str, Any]]:
        """Trusted, internal queries (the sandbox for user SQL is storage.sql)."""
        with self._lock:
            cur = self._con.execute(sql, params or [])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def arrow(self, sql: str, params: list | None = None) -> pa.Table:
        with self._lock:
            # con.sql(...): execute(...).to_arrow_table() warns about an extra copy in DuckDB 2.0
            return self._con.sql(sql, params=params or None).to_arrow_table()

    def dataset_parts(self, name: str | None = None, split: str | None = None) -> list[str]:
        """Store-relative paths of the active Parquet parts, optionally for one dataset / split."""
        sql = "SELECT path FROM datasets WHERE active"
        params: list = []
        if name:
            sql += " AND name = ?"
            params.append(name)
        if split:
            sql += " AND split = ?"
            params.append(split)
        return [r["path"] for r in self.query(sql + " ORDER BY name, split, path", params)]

    def shard_paths(self, job_id: str | None = None) -> list[str]:
        sql = 'SELECT path FROM shards'
        params: list = []
        if job_id:
            sql += " WHERE job_id = ?"
            params.append(job_id)
        return [r["path"] for r in self.query(sql + ' ORDER BY job_id, "index"', params)]

    def snapshot_tables(self) -> dict[str, pa.Table]:
        """The small catalog tables as Arrow, for the read-only SQL sandbox."""
        return {t: self.arrow(f"SELECT * FROM {t}") for t in ("datasets", "jobs", "shards", "runs")}

    # ---------------------------------------------------------------- views
    def refresh_views(self) -> None:
        with self._lock:
            for stmt in view_statements(self.store, self.dataset_parts(), self.shard_paths()):
                self._con.execute(stmt)
            self.generation += 1
            self.version += 1

    # ---------------------------------------------------------------- datasets
    def find_dataset_version(self, name: str, content_hash: str) -> list[dict]:
        return self.query("SELECT * FROM datasets WHERE name = ? AND content_hash = ?", [name, content_hash])

    def register_dataset_part(
        self, *, name: str, version: str, split: str, path: str, rows: int,
        format: str, source: str, content_hash: str, created_at: dt.datetime | None = None,
    ) -> None:
        """Record one ingested part; it supersedes (deactivates) older versions of the same (name, split)."""
        with self._lock:
            self._con.execute("BEGIN")
            try:
                self._con.execute(
                    "UPDATE datasets SET active = FALSE WHERE name = ? AND split = ? AND version <> ?",
                    [name, split, version],
                )
                self._con.execute(
                    "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, TRUE, ?)",
                    [name, version, split, path, rows, format, source, content_hash, created_at or _now()],
                )
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self.refresh_views()

    def datasets(self) -> list[dict]:
        return self.query(
            "SELECT name, version, split, rows, format, source, active, created_at, path "
            "FROM datasets ORDER BY name, split, created_at"
        )

    # ---------------------------------------------------------------- jobs
    def create_job(
        self, job_id: str, *, dataset: str, split: str | None, spec: dict, total_rows: int,
        shards_total: int, idempotency_key: str | None = None,
    ) -> dict:
        """Insert a queued job and write its spec next to its shards (job.json) for `rebuild`.

        Creating a job id that already exists returns the existing row (re-running is a no-op).
        """
        with self._lock:
            existing = self.get_job(job_id)
            if existing:
                return existing
            now = _now()
            record = dict(job_id=job_id, dataset=dataset, split=split, spec=spec, total_rows=total_rows,
                          shards_total=shards_total, idempotency_key=idempotency_key, created_at=now.isoformat())
            write_json_atomic(record, self.store.job_spec_path(dataset, job_id))
            self._con.execute(
                "INSERT INTO jobs (job_id, dataset, split, status, spec, idempotency_key, total_rows, shards_total,"
                " created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                [job_id, dataset, split, json.dumps(spec), idempotency_key, total_rows, shards_total, now, now],
            )
            self.version += 1
            return self.get_job(job_id)

    def get_job(self, job_id: str) -> dict | None:
        rows = self.query("SELECT * FROM jobs WHERE job_id = ?", [job_id])
        if not rows:
            return None
        row = rows[0]
        row["spec"] = json.loads(row["spec"]) if isinstance(row["spec"], str) else row["spec"]
        return row

    def find_job_by_idempotency_key(self, key: str) -> dict | None:
        rows = self.query("SELECT job_id FROM jobs WHERE idempotency_key = ?", [key])
        return self.get_job(rows[0]["job_id"]) if rows else None

    def jobs(self, status: str | None = None) -> list[dict]:
        sql = "SELECT job_id, dataset, split, status, total_rows, done_rows, error_rows, shards_total, shards_done, message, created_at, finished_at FROM jobs"
        params = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        return self.query(sql + " ORDER BY created_at", params)

    def _transition(self, job_id: str, to: str, allowed_from: tuple[str, ...], message: str | None = None, **stamps) -> dict:
        with self._lock:
            job = self.get_job(job_id)
            if job is None:
                raise JobStateError(f"no job {job_id!r}: list jobs with `salient jobs ls`")
            if job["status"] not in allowed_from:
                raise JobStateError(
                    f"job {job_id} is {job['status']}; it can become {to} only from {', '.join(allowed_from)}"
                )
            sets = ["status = ?", "updated_at = ?"]
            params: list = [to, _now()]
            if message is not None:
                sets.append("message = ?")
                params.append(message)
            for col, value in stamps.items():
                sets.append(f"{col} = ?")
                params.append(value)
            self._con.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE job_id = ?", params + [job_id])
            self.version += 1
            return self.get_job(job_id)

    def mark_running(self, job_id: str) -> dict:
        """queued (or an interrupted running / failed job being resumed) -> running."""
        return self._transition(job_id, "running", ("queued", "running", "failed"), message="", started_at=_now(), finished_at=None)

    def mark_cancelling(self, job_id: str) -> dict:
        return self._transition(job_id, "cancelling", ("queued", "running"))

    def mark_succeeded(self, job_id: str, message: str = "") -> dict:
        return self._transition(job_id, "succeeded", ("running",), message=message, finished_at=_now())

    def mark_failed(self, job_id: str, message: str) -> dict:
        return self._transition(job_id, "failed", ("queued", "running", "cancelling"), message=message, finished_at=_now())

    def mark_cancelled(self, job_id: str, message: str = "cancelled by request") -> dict:
        return self._transition(job_id, "cancelled", ("queued", "running", "cancelling"), message=message, finished_at=_now())

    # ---------------------------------------------------------------- shards
    def committed_shards(self, job_id: str) -> set[int]:
        return {r["index"] for r in self.query('SELECT "index" FROM shards WHERE job_id = ?', [job_id])}

    def commit_shard(self, job_id: str, *, index: int, path: str, rows: int, error_rows: int, bytes_: int) -> bool:
        """Record a shard whose file is already in place; update the job's progress counts.

        Returns False (and changes nothing) when the shard was already committed: each shard counts once.
        """
        with self._lock:
            self._con.execute("BEGIN")
            try:
                done = self._con.execute(
                    'SELECT count(*) FROM shards WHERE job_id = ? AND "index" = ?', [job_id, index]
                ).fetchall()[0][0]
                if done:
                    self._con.execute("ROLLBACK")
                    return False
                self._con.execute(
                    "INSERT INTO shards VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [job_id, index, path, rows, error_rows, bytes_, _now()],
                )
                self._con.execute(
                    "UPDATE jobs SET done_rows = done_rows + ?, error_rows = error_rows + ?,"
                    " shards_done = shards_done + 1, updated_at = ? WHERE job_id = ?",
                    [rows, error_rows, _now(), job_id],
                )
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self.refresh_views()
            return True

    # ---------------------------------------------------------------- runs
    def register_run(self, row: dict) -> None:
        """Insert or replace a run row (keys: _RUN_COLUMNS; config/metrics as dicts)."""
        values = []
        for col in _RUN_COLUMNS:
            value = row.get(col)
            if col in ("config", "metrics") and value is not None and not isinstance(value, str):
                value = json.dumps(value, default=str)
            values.append(value)
        with self._lock:
            self._con.execute(
                f"INSERT OR REPLACE INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(_RUN_COLUMNS))})",
                values,
            )
            self.version += 1

    def set_current_run(self, dataset: str, student: str, run_id: str) -> None:
        """Make run_id the one current run for (dataset, student), in one transaction."""
        with self._lock:
            self._con.execute("BEGIN")
            try:
                self._con.execute("UPDATE runs SET is_current = FALSE WHERE dataset = ? AND student = ?", [dataset, student])
                self._con.execute("UPDATE runs SET is_current = TRUE WHERE run_id = ?", [run_id])
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self.version += 1

    def runs(self, dataset: str | None = None) -> list[dict]:
        sql = "SELECT * FROM runs"
        params = []
        if dataset:
            sql += " WHERE dataset = ?"
            params.append(dataset)
        return self.query(sql + " ORDER BY created_at", params)

    # ---------------------------------------------------------------- rebuild
    def rebuild(self) -> dict[str, int]:
        """Recreate every table from the files alone (datasets parts, shards + job.json, run.json)."""
        store = self.store
        sweep_tmp(store.root)
        with self._lock:
            self._con.execute("BEGIN")
            try:
                for table in ("datasets", "jobs", "shards", "runs"):
                    self._con.execute(f"DELETE FROM {table}")
                counts = {"datasets": 0, "jobs": 0, "shards": 0, "runs": 0}
                for part in sorted(store.datasets_dir.glob("*/*/part-*.parquet")):
                    meta = read_metadata(part)
                    self._con.execute(
                        "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, FALSE, ?)",
                        [meta.get("salient.dataset", part.parent.parent.name), meta.get("salient.version", part.parent.name),
                         meta["salient.split"], store.relative(part), int(meta["salient.rows"]), meta.get("salient.format"),
                         meta.get("salient.source"), meta.get("salient.content_hash"), meta.get("salient.created_at")],
                    )
                    counts["datasets"] += 1
                # the newest version of each (name, split) is the active one
                self._con.execute(
                    "UPDATE datasets SET active = TRUE WHERE (name, split, created_at) IN "
                    "(SELECT name, split, max(created_at) FROM datasets GROUP BY name, split)"
                )
                for spec_path in sorted(store.rationales_dir.glob("dataset=*/job=*/job.json")):
                    counts["jobs"] += self._rebuild_job(spec_path)
                counts["shards"] = self._con.execute("SELECT count(*) FROM shards").fetchall()[0][0]
                for record in sorted(store.runs_dir.glob("*/run.json")):
                    self.register_run(json.loads(record.read_text()))
                    counts["runs"] += 1
                for pointer in sorted((store.runs_dir / "_current").glob("*.json")):
                    p = json.loads(pointer.read_text())
                    self._con.execute("UPDATE runs SET is_current = (run_id = ?) WHERE dataset = ? AND student = ?",
                                      [p["run_id"], p["dataset"], p["student"]])
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self.refresh_views()
            return counts

    def _rebuild_job(self, spec_path: Path) -> int:
        record = json.loads(spec_path.read_text())
        job_id = record["job_id"]
        done_rows = error_rows = shards_done = 0
        for shard in sorted(spec_path.parent.glob("shard-*.parquet")):
            meta = read_metadata(shard)
            rows, errs = int(meta["salient.rows"]), int(meta["salient.error_rows"])
            self._con.execute(
                "INSERT INTO shards VALUES (?, ?, ?, ?, ?, ?, ?)",
                [job_id, int(meta["salient.shard_index"]), self.store.relative(shard), rows, errs,
                 shard.stat().st_size, meta.get("salient.created_at")],
            )
            done_rows += rows
            error_rows += errs
            shards_done += 1
        total_shards = record.get("shards_total")
        # Only the files survive: a job with all its shards is succeeded; otherwise it was interrupted
        # (resumable: `salient attribute --job-id ...` picks it up again).
        status = "succeeded" if total_shards is not None and shards_done >= total_shards else "failed"
        message = "" if status == "succeeded" else f"rebuilt from files: {shards_done}/{total_shards} shards committed; re-run to resume"
        self._con.execute(
            "INSERT INTO jobs (job_id, dataset, split, status, spec, idempotency_key, total_rows, done_rows, error_rows,"
            " shards_total, shards_done, message, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [job_id, record["dataset"], record.get("split"), status, json.dumps(record.get("spec", {})),
             record.get("idempotency_key"), record.get("total_rows"), done_rows, error_rows, total_shards,
             shards_done, message, record.get("created_at"), _now()],
        )
        return 1


def shard_metadata(*, job_id: str, shard_index: int, rows: int, error_rows: int, dataset: str) -> dict[str, str]:
    """Footer metadata every shard carries so `Catalog.rebuild` can re-register it from the file alone."""
    return {
        "salient.job_id": job_id,
        "salient.dataset": dataset,
        "salient.shard_index": str(shard_index),
        "salient.rows": str(rows),
        "salient.error_rows": str(error_rows),
        "salient.created_at": _now().isoformat(),
    }
