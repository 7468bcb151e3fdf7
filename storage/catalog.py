"""The DuckDB catalog: an index over the store's Parquet files (which stay the truth).

Tables: datasets, jobs, shards, runs, catalog_state (version counters), idempotency_keys (keys
that found an existing job; a job's own key is its `idempotency_key` column). The views examples,
rationales and rationale_tokens are not stored: readers build them over the catalog's file lists
(storage.views). No process keeps catalog.duckdb open: each write is one short transaction
(`_transaction`), each read a read-only open, so a job driver, a trainer, `salient sql` and the
REST service share one store; an open that finds the file locked waits up to
`catalog_lock_timeout_s`, then raises `CatalogLocked`. An open is an ATTACH to this process's
one in-memory DuckDB instance (`_engine_cursor`: under a millisecond, where a new instance costs ~15 ms),
and a read whose answer is already known is not made again while the file is unchanged (the read
cache, `_cached`). Job state changes are the named `mark_*` functions below and nowhere else (STYLE.md 5).

    cat = Catalog.open(Store.open("./salient-data"))
    job = cat.create_job(job_id, dataset="cqa", split="train", spec={...}, total_rows=9741)
    cat.mark_running(job_id)
    cat.commit_shard(job_id, index=0, path=..., rows=1000, error_rows=2, bytes_=123456)
    cat.mark_succeeded(job_id)
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb
import pyarrow as pa

from .parquet_io import write_json_atomic
from .settings import get_setting
from .store import Store
from .views import VIEWS, ViewFile, create_views

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
CREATE TABLE IF NOT EXISTS catalog_state (name VARCHAR PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, dataset VARCHAR, student VARCHAR, status VARCHAR,
    path VARCHAR, config JSON, metrics JSON, val_score DOUBLE, snapshot VARCHAR,
    is_current BOOLEAN DEFAULT FALSE, created_at TIMESTAMPTZ, finished_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key VARCHAR PRIMARY KEY, job_id VARCHAR NOT NULL, spec JSON NOT NULL, created_at TIMESTAMPTZ NOT NULL
);
"""

_RUN_COLUMNS = (
    "run_id", "dataset", "student", "status", "path", "config", "metrics",
    "val_score", "snapshot", "is_current", "created_at", "finished_at",
)


class CatalogError(RuntimeError):
    """A catalog operation was refused; the message says why and what to do."""


class CatalogLocked(CatalogError):
    """catalog.duckdb stayed locked by another process for longer than catalog_lock_timeout_s."""


class CatalogCorrupt(CatalogError):
    """catalog.duckdb is not a readable DuckDB file; `salient catalog rebuild` recreates it from the files."""


class JobStateError(CatalogError):
    """A job transition that its current state does not allow."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


_NAMES_A_VIEW = re.compile(r"\b(examples|rationales|rationale_tokens)\b", re.IGNORECASE)
_SHARED: dict[str, "_FileShared"] = {}
_SHARED_GUARD = threading.Lock()


class _ReadCache:
    """This process's results of reads of one catalog file, each kept with the file's signature when it was read
    (`_FileShared.signature`) and served only while the file still has that signature. At most `max_entries`
    (catalog_read_cache_entries; 0 turns caching off), least recently used dropped first."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, tuple[tuple, Any]] = OrderedDict()  # key -> (signature, value)
        self._lock = threading.Lock()

    def get(self, key: tuple, signature: tuple | None) -> tuple[bool, Any]:
        if signature is None:
            return False, None
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] != signature:
                return False, None
            self._entries.move_to_end(key)
            return True, hit[1]

    def put(self, key: tuple, signature: tuple | None, value: Any) -> None:
        if signature is None or self.max_entries <= 0:
            return
        with self._lock:
            self._entries[key] = (signature, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _FileShared:
    """What every Catalog of one file shares in this process: the lock its operations take turns on (DuckDB
    refuses a read-only and a read-write attach of one file at once in one process), the operation in
    progress on each thread (a nested one joins it), the read cache and the file's signature."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        self.local = threading.local()
        self.cache = _ReadCache(int(get_setting("catalog_read_cache_entries")))
        self._fd: int | None = None  # read-only descriptor the headers are read through (it locks nothing)
        self._fd_ino: int | None = None
        self._fd_lock = threading.Lock()

    def signature(self, *, reopen: bool) -> tuple | None:
        """What changes whenever a commit reaches catalog.duckdb, read without opening it as a database.

        DuckDB appends every commit to `<file>.wal` (whose size then grows) until a checkpoint writes the
        changes into the file, writes a new database header (its iteration counter goes up, in the file's
        first 12 KiB) and empties the WAL. So a commit since the last signature changes the WAL's size or
        a header; a file moved aside or replaced changes its inode. Conservative: a change that commits
        nothing (a torn header read, say) only costs a re-read. None: no file, or one not read yet.

        The headers are read through one descriptor kept open (a plain read-only one: it takes no
        lock and blocks nobody). It is (re)opened only with `reopen`, which callers pass only while
        holding `lock` with nothing attached: closing any descriptor of a file drops every fcntl lock
        this process holds on it (POSIX), DuckDB's own included.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        with self._fd_lock:
            if self._fd_ino != st.st_ino:
                if not reopen:
                    return None
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = self._fd_ino = None
                try:
                    self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    return None
                self._fd_ino = os.fstat(self._fd).st_ino
                if self._fd_ino != st.st_ino:  # replaced again in between: read it, keep nothing
                    return None
            header = os.pread(self._fd, _HEADER_BYTES, 0)
        try:
            wal = os.stat(f"{self.path}.wal")
            wal_sig = (wal.st_ino, wal.st_size, wal.st_mtime_ns)
        except FileNotFoundError:
            wal_sig = None
        return (st.st_ino, st.st_size, st.st_mtime_ns, header, wal_sig)


_HEADER_BYTES = 3 * 4096  # DuckDB's main header and its two database headers


def _shared_for(path: Path) -> _FileShared:
    key = str(Path(path).resolve())
    with _SHARED_GUARD:
        if key not in _SHARED:
            _SHARED[key] = _FileShared(Path(key))
        return _SHARED[key]


_ENGINE: tuple[int, duckdb.DuckDBPyConnection] | None = None  # (pid, connection) of this process's engine
_ENGINE_GUARD = threading.Lock()


def _engine_cursor() -> duckdb.DuckDBPyConnection:
    """A new connection (cursor) to this process's in-memory DuckDB instance, which catalog files are attached
    to, one operation at a time.

    Creating a DuckDB instance (`duckdb.connect`, even of ":memory:") costs about 15 ms in DuckDB 2.0;
    attaching a file to a live one under a millisecond. So each catalog operation opens a cursor here,
    ATTACHes catalog.duckdb (read-only for reads), and DETACHes it at its end: the file is held exactly
    as long as with a connection of its own. A forked child makes its own engine.
    """
    global _ENGINE
    with _ENGINE_GUARD:
        if _ENGINE is None or _ENGINE[0] != os.getpid():
            _ENGINE = (os.getpid(), duckdb.connect(":memory:"))
        return _ENGINE[1].cursor()  # under the guard: threads of two stores may ask at once


def _alias_for(path: Path) -> str:
    """The name a catalog file is attached under: one per file, so two stores' operations never collide."""
    return "catalog_" + hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:16]


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _unreadable_catalog(path: Path, exc: BaseException) -> "CatalogCorrupt":
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CatalogCorrupt(f"{path} cannot be opened as a DuckDB catalog ({first}). The Parquet files are the truth: "
                          "run `salient catalog rebuild`, which moves this file aside and rebuilds the catalog from them")


class Catalog:
    """The store's index. Holds no connection: every operation attaches catalog.duckdb and detaches it.

    Writes run in one short transaction (`_transaction`), reads on a read-only attach
    (`_reading`), so many processes share one store: a job driver, a trainer, `salient sql` and
    the REST service each hold the file only for the length of one operation. An open that finds
    the file locked is retried for `catalog_lock_timeout_s`, then raises `CatalogLocked`.
    Reads (`query` without a view, `state`) are answered from the process's read cache while the
    file's signature is the one they were read under (`_cached`, `_FileShared.signature`).
    Thread-safe: the operations of one process on one catalog file are serialised; cache hits take no lock.
    """

    def __init__(self, store: Store):
        self.store = store
        self._shared = shared = _shared_for(store.catalog_path)
        self._lock, self._cache = shared.lock, shared.cache
        self._alias = _alias_for(store.catalog_path)
        self._local = shared.local  # the connection of the operation in progress on this thread
        self._schema_ok = False

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, store: Store | str | None = None) -> "Catalog":
        """The catalog of `store`; opens nothing yet (catalog.duckdb is created by the first write)."""
        if not isinstance(store, Store):
            store = Store.open(store)
        return cls(store)

    def close(self) -> None:
        """Nothing to release: connections live for one operation. Kept for `with Catalog.open(...)`."""

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Attach catalog.duckdb to this process's engine on a new cursor (which then reads and writes it
        by unqualified names), retrying while another process holds its lock (catalog_lock_timeout_s).
        `_disconnect` detaches it."""
        path = self.store.catalog_path
        timeout = get_setting("catalog_lock_timeout_s")
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            con = _engine_cursor()
            try:
                con.execute(f"DETACH DATABASE IF EXISTS {self._alias}")  # left by an operation that failed to detach
                con.execute(f"ATTACH {_sql_string(str(path))} AS {self._alias}{' (READ_ONLY)' if read_only else ''}")
                con.execute(f"USE {self._alias}")
                return con
            except duckdb.IOException as exc:
                con.close()
                msg = str(exc)
                if "lock" not in msg.lower() or time.monotonic() >= deadline:
                    if "lock" not in msg.lower():
                        raise _unreadable_catalog(path, exc) from exc
                    holder = re.search(r"\(PID (\d+)\)", msg)
                    who = f"process {holder.group(1)}" if holder else "another process"
                    raise CatalogLocked(
                        f"{path} stayed locked by {who} for catalog_lock_timeout_s={timeout:g} s. Salient holds it only "
                        f"for one short transaction, so {who} is stuck or is not salient: stop it, or raise "
                        f"SALIENT_CATALOG_LOCK_TIMEOUT_S and try again") from exc
            except duckdb.Error as exc:  # not a DuckDB file, or a damaged one
                con.close()
                raise _unreadable_catalog(path, exc) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _connect_empty(self) -> duckdb.DuckDBPyConnection:
        """An empty in-memory catalog with every table, for reads of a store that has no catalog.duckdb yet."""
        con = _engine_cursor()
        con.execute(f"DETACH DATABASE IF EXISTS {self._alias}")
        con.execute(f"ATTACH ':memory:' AS {self._alias}")
        con.execute(f"USE {self._alias}")
        con.execute(_DDL)
        return con

    def _disconnect(self, con: duckdb.DuckDBPyConnection) -> None:
        """Detach the catalog (a writer's checkpoint happens here) and close the cursor: the file is released."""
        try:
            con.execute("USE memory")
            con.execute(f"DETACH DATABASE IF EXISTS {self._alias}")
        finally:
            con.close()

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        if self._schema_ok:
            return
        con.execute(_DDL)
        for view in VIEWS:  # catalogs written by older versions stored their views; readers build their own now
            con.execute(f"DROP VIEW IF EXISTS {view}")
        for table in ("_empty_examples", "_empty_rationales"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        self._schema_ok = True

    @contextmanager
    def _transaction(self, *, files_changed: bool = False,
                     visible_to_sql: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """One short write transaction: BEGIN, yield the connection, COMMIT (ROLLBACK on error), close.

        Bumps the catalog's version (and generation when `files_changed`: a view's file list changed),
        which readers such as the SQL sandbox compare to decide what to re-read; a write only to tables
        the sandbox does not copy passes `visible_to_sql=False` and bumps nothing. (This process's read
        cache follows the file itself, whatever the counters say.)
        """
        active = getattr(self._local, "con", None)
        if active is not None:
            if not self._local.writable:
                raise CatalogError("internal: a catalog write was started inside a read; open the write first")
            yield active
            if files_changed:
                self._local.files_changed = True
            return
        with self._lock:
            if not self.store.catalog_path.exists():  # a new store, or the file was deleted / moved aside
                self._schema_ok = False
            con = self._connect(read_only=False)
            self._local.con, self._local.writable, self._local.files_changed = con, True, files_changed
            try:
                self._ensure_schema(con)
                con.execute("BEGIN")
                try:
                    yield con
                    bump = ["version"] + (["generation"] if self._local.files_changed else [])
                    if visible_to_sql or self._local.files_changed:
                        con.execute("INSERT OR IGNORE INTO catalog_state VALUES ('version', 0), ('generation', 0)")
                        con.execute("UPDATE catalog_state SET value = value + 1 WHERE name IN "
                                    f"({', '.join(repr(b) for b in bump)})")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            finally:
                self._local.con = None
                self._disconnect(con)
                self._cache.clear()

    @contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for reads: read-only (never writes the file), or the current transaction's."""
        active = getattr(self._local, "con", None)
        if active is not None:
            yield active
            return
        with self._lock:
            if self.store.catalog_path.exists():
                con = self._connect(read_only=True)
            else:  # a new store: nothing written yet, so every table is empty
                con = self._connect_empty()
            self._local.con, self._local.writable = con, False
            try:
                yield con
            finally:
                self._local.con = None
                self._disconnect(con)

    def _cached(self, key: tuple, read: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """`read(con)` on a read-only attach, or what it returned before while catalog.duckdb is unchanged.

        The file's signature (`_FileShared.signature`, no database open, about 10 us) is compared with
        the one taken for the cached read, so a commit by any process, this one included, is seen by the
        next call. Inside an
        operation (a transaction reading its own writes) the operation's connection is read, uncached.
        """
        try:
            hash(key)
        except TypeError:  # a parameter that cannot be a key (a list, say): read, uncached
            key = None
        if key is None or getattr(self._local, "con", None) is not None:
            with self._reading() as con:
                return read(con)
        hit, value = self._cache.get(key, self._shared.signature(reopen=False))
        if hit:
            return value
        with self._lock:  # threads missing at once read once: the first fills the cache for those waiting here
            # taken before the attach: a commit of another process in between is read, and then only makes
            # the signature stale, so the next call reads again
            signature = self._shared.signature(reopen=True)
            hit, value = self._cache.get(key, signature)
            if hit:
                return value
            with self._reading() as con:
                value = read(con)
            self._cache.put(key, signature, value)
        return value

    # ---------------------------------------------------------------- reading
    def query(self, sql: str, params: list | None = None) -> list[dict[str, Any]]:
        """Trusted, internal queries (the sandbox for user SQL is storage.sql), as a list of new row dicts.

        Answered from the read cache while catalog.duckdb is unchanged (`_cached`), except when `sql`
        names one of the views examples / rationales / rationale_tokens: those read Parquet files, so they
        are built on the connection and read every time.
        """
        def read(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple]]:
            cur = con.execute(sql, params or [])
            return [d[0] for d in cur.description], cur.fetchall()

        if _NAMES_A_VIEW.search(sql):
            with self._reading() as con:
                self._views_for(con, sql)
                cols, rows = read(con)
        else:
            cols, rows = self._cached(("query", sql, *(params or ())), read)
        return [dict(zip(cols, row)) for row in rows]

    def arrow(self, sql: str, params: list | None = None) -> pa.Table:
        with self._reading() as con:
            self._views_for(con, sql)
            # con.sql(...): execute(...).to_arrow_table() warns about an extra copy in DuckDB 2.0
            return con.sql(sql, params=params or None).to_arrow_table()

    def _views_for(self, con: duckdb.DuckDBPyConnection, sql: str) -> None:
        if _NAMES_A_VIEW.search(sql):
            create_views(con, *self._view_files(con), temp=True)

    def _view_files(self, con: duckdb.DuckDBPyConnection) -> tuple[list[ViewFile], list[ViewFile]]:
        """The files behind the views: active dataset parts and committed shards, with their identifying keys."""
        parts = [ViewFile(self.store.absolute(p), {"dataset": n, "split": s}) for p, n, s in con.execute(
            "SELECT path, name, split FROM datasets WHERE active ORDER BY name, split, path").fetchall()]
        shards = [ViewFile(self.store.absolute(p), {"job_id": j, "dataset": d, "shard_index": i}) for p, j, d, i in con.execute(
            'SELECT s.path, s.job_id, j.dataset, s."index" FROM shards s LEFT JOIN jobs j USING (job_id) '
            'ORDER BY s.job_id, s."index"').fetchall()]
        return parts, shards

    def view_files(self) -> tuple[list[ViewFile], list[ViewFile]]:
        """(dataset parts, shards) as `storage.views.ViewFile`s, for readers building the views."""
        with self._reading() as con:
            return self._view_files(con)

    def state(self) -> tuple[int, int]:
        """(generation, version): generation changes when a view's file list changed, version on every write."""
        def read(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
            if not self._has_table(con, "catalog_state"):
                return 0, 0
            values = dict(con.execute("SELECT name, value FROM catalog_state").fetchall())
            return values.get("generation", 0), values.get("version", 0)

        return self._cached(("state",), read)

    @property
    def generation(self) -> int:
        return self.state()[0]

    @property
    def version(self) -> int:
        return self.state()[1]

    @staticmethod
    def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
        return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND database_name = "
                                "current_database()", [name]).fetchall()[0][0])

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

    def snapshot_tables(self, names: tuple[str, ...] = ("datasets", "jobs", "shards", "runs")) -> dict[str, pa.Table]:
        """The small catalog tables as Arrow (one read), for the read-only SQL sandbox."""
        with self._reading() as con:
            return {t: con.sql(f"SELECT * FROM {t}").to_arrow_table() for t in names}

    # ---------------------------------------------------------------- datasets
    def find_dataset_version(self, name: str, content_hash: str) -> list[dict]:
        return self.query("SELECT * FROM datasets WHERE name = ? AND content_hash = ?", [name, content_hash])

    def register_dataset_part(
        self, *, name: str, version: str, split: str, path: str, rows: int,
        format: str, source: str, content_hash: str, created_at: dt.datetime | None = None,
    ) -> None:
        """Record one ingested part; it supersedes (deactivates) older versions of the same (name, split)."""
        with self._transaction(files_changed=True) as con:
            con.execute(
                "UPDATE datasets SET active = FALSE WHERE name = ? AND split = ? AND version <> ?",
                [name, split, version],
            )
            con.execute(
                "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, TRUE, ?)",
                [name, version, split, path, rows, format, source, content_hash, created_at or _now()],
            )

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
        existing = self.get_job(job_id)
        if existing:
            return existing
        now = _now()
        record = dict(job_id=job_id, dataset=dataset, split=split, spec=spec, total_rows=total_rows,
                      shards_total=shards_total, idempotency_key=idempotency_key, created_at=now.isoformat())
        write_json_atomic(record, self.store.job_spec_path(dataset, job_id))
        with self._transaction() as con:
            if self.get_job(job_id) is None:  # another process may have created it since the check above
                con.execute(
                    "INSERT INTO jobs (job_id, dataset, split, status, spec, idempotency_key, total_rows, shards_total,"
                    " created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                    [job_id, dataset, split, json.dumps(spec), idempotency_key, total_rows, shards_total, now, now],
                )
            return self.get_job(job_id)

    def get_job(self, job_id: str) -> dict | None:
        rows = self.query("SELECT * FROM jobs WHERE job_id = ?", [job_id])
        if not rows:
            return None
        row = rows[0]
        row["spec"] = json.loads(row["spec"]) if isinstance(row["spec"], str) else row["spec"]
        return row

    def idempotency_key(self, key: str) -> tuple[str, dict] | None:
        """(job id, request spec) Idempotency-Key `key` was first used with, or None. A key names the job
        created with it (`create_job(idempotency_key=)`) or the existing job `bind_idempotency_key` bound it
        to. One read of every key (kept in the read cache) answers all keys until the catalog changes: a
        service sees many keys between writes."""
        def read(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str]]:
            keys = {k: (job_id, spec) for k, job_id, spec in con.execute(
                "SELECT idempotency_key, job_id, spec FROM jobs WHERE idempotency_key IS NOT NULL "
                "ORDER BY created_at").fetchall()}  # a key used twice: the newest job
            if self._has_table(con, "idempotency_keys"):  # absent from catalogs no newer code has written
                keys.update((k, (job_id, spec)) for k, job_id, spec in
                            con.execute("SELECT key, job_id, spec FROM idempotency_keys").fetchall())
            return keys

        found = self._cached(("idempotency keys",), read).get(key)
        if found is None:
            return None
        job_id, spec = found
        return job_id, json.loads(spec) if isinstance(spec, str) else spec

    def bind_idempotency_keys(self, bindings: dict[str, tuple[str, dict]]) -> dict[str, tuple[str, dict]]:
        """Bind each key to an existing job for a request spec, `{key: (job id, spec)}` (a submit whose
        spec named a job that another key, or none, created), in one write. Returns every key's (job id,
        spec): an earlier binding wins. The SQL sandbox does not copy this table, so its readers are not
        told to refresh (`visible_to_sql=False`)."""
        keys = list(bindings)
        with self._transaction(visible_to_sql=False) as con:
            bound = {k: (job_id, spec) for k, job_id, spec in con.execute(
                "SELECT key, job_id, spec FROM idempotency_keys WHERE key IN (SELECT unnest(?)) UNION ALL "
                "SELECT idempotency_key, job_id, spec FROM jobs WHERE idempotency_key IN (SELECT unnest(?))",
                [keys, keys]).fetchall()}
            now = _now()
            new = [(k, job_id, json.dumps(spec), now) for k, (job_id, spec) in bindings.items() if k not in bound]
            if new:
                con.executemany("INSERT INTO idempotency_keys VALUES (?, ?, ?, ?)", new)
        result = {k: (job_id, json.loads(spec) if isinstance(spec, str) else spec) for k, (job_id, spec) in bound.items()}
        result.update((k, binding) for k, binding in bindings.items() if k not in bound)
        return result

    def jobs(self, status: str | None = None) -> list[dict]:
        sql = "SELECT job_id, dataset, split, status, total_rows, done_rows, error_rows, shards_total, shards_done, message, created_at, finished_at FROM jobs"
        params = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        return self.query(sql + " ORDER BY created_at", params)

    def job_shards(self, job_id: str) -> list[dict]:
        """The committed shards of `job_id`: index, rows, error_rows, bytes, path."""
        return self.query('SELECT "index", rows, error_rows, bytes, path FROM shards WHERE job_id = ? ORDER BY "index"',
                          [job_id])

    def _transition(self, job_id: str, to: str, allowed_from: tuple[str, ...], message: str | None = None, **stamps) -> dict:
        with self._transaction() as con:
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
            con.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE job_id = ?", params + [job_id])
            return self.get_job(job_id)

    def mark_running(self, job_id: str) -> dict:
        """queued (or an interrupted running / failed job being resumed) -> running."""
        return self._transition(job_id, "running", ("queued", "running", "failed"), message="", started_at=_now(), finished_at=None)

    def mark_cancelling(self, job_id: str) -> dict:
        """Ask the job's driver to stop: it sees `cancelling` at its next poll and ends the job cancelled."""
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
        One short transaction over two rows: no view is rebuilt here (readers build theirs, checking only
        files they have not seen), so a commit costs O(1) files however many shards the store holds.
        """
        with self._transaction(files_changed=True) as con:
            done = con.execute('SELECT count(*) FROM shards WHERE job_id = ? AND "index" = ?', [job_id, index]).fetchall()[0][0]
            if done:
                return False
            con.execute("INSERT INTO shards VALUES (?, ?, ?, ?, ?, ?, ?)", [job_id, index, path, rows, error_rows, bytes_, _now()])
            con.execute(
                "UPDATE jobs SET done_rows = done_rows + ?, error_rows = error_rows + ?,"
                " shards_done = shards_done + 1, updated_at = ? WHERE job_id = ?",
                [rows, error_rows, _now(), job_id],
            )
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
        with self._transaction() as con:
            con.execute(
                f"INSERT OR REPLACE INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(_RUN_COLUMNS))})",
                values,
            )

    def set_current_run(self, dataset: str, student: str, run_id: str) -> None:
        """Make run_id the one current run for (dataset, student), in one transaction."""
        with self._transaction() as con:
            con.execute("UPDATE runs SET is_current = FALSE WHERE dataset = ? AND student = ?", [dataset, student])
            con.execute("UPDATE runs SET is_current = TRUE WHERE run_id = ?", [run_id])

    def runs(self, dataset: str | None = None) -> list[dict]:
        sql = "SELECT * FROM runs"
        params = []
        if dataset:
            sql += " WHERE dataset = ?"
            params.append(dataset)
        return self.query(sql + " ORDER BY created_at", params)

    # ---------------------------------------------------------------- rebuild
    def rebuild(self, *, quarantine: bool = False) -> dict[str, int]:
        """Recreate every table from the files alone; the counts registered (storage.recovery has the full report)."""
        from .recovery import rebuild_catalog

        return rebuild_catalog(self, quarantine=quarantine).counts


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
