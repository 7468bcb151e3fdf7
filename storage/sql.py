"""The sandboxed, read-only SQL runner behind `salient sql` and the REST /sql endpoint.

User SQL never runs on the catalog's own connection, nor in the caller's process. A sandbox is a
worker process (storage.sql_worker) holding a separate in-memory DuckDB database with copies of
the catalog tables (datasets, jobs, shards, runs), read in one read-only open of catalog.duckdb
(user SQL never writes it), and the views examples / rationales / rationale_tokens built there
over the catalog's file lists (storage.views: a damaged file makes only the queries that read it
fail), locked down with

* a statement allowlist checked by DuckDB's own parser (`duckdb.extract_statements`): one
  statement, of type SELECT (which covers WITH, VALUES, FROM-first, DESCRIBE, SHOW, SUMMARIZE)
  or EXPLAIN [ANALYZE] of a SELECT;
* a function allowlist over the parsed statement (`json_serialize_sql`): table functions only
  from TABLE_FUNCTIONS (Parquet readers, range/generate_series/unnest, read-only duckdb_*
  introspection) and no state-changing scalar function (REFUSED_FUNCTIONS), so `checkpoint()`,
  `query('...')` or `read_csv(...)` are refused before they run;
* `lock_down(con, root, ...)`, the one lock-down of every DuckDB connection that runs user SQL
  (also student_trainer's `--where`): `allowed_directories=[<store root>/]` then
  `enable_external_access=false` (Parquet reads inside the store only), no Python replacement
  scans, no extension autoload, no temp directory (nothing spills to disk), `memory_limit`,
  `threads`, then `lock_configuration=true` (SET/RESET refused);
* limits held from outside DuckDB by the worker process: its memory is bounded by RLIMIT_DATA
  and a resident-set watchdog at sql_memory_limit + sql_worker_overhead; at the time limit it is
  killed (SQLTimeout) and the next query starts a fresh one; a result over
  sql_max_result_bytes is refused;
* a row cap: at most `max_rows + 1` rows are fetched; the result reports `truncated`.

Limits are the settings in storage.settings (sql_time_limit_s, sql_max_time_limit_s,
sql_max_rows, sql_memory_limit, sql_worker_overhead, sql_max_result_bytes, sql_threads,
sql_max_query_chars).

    result = run_sql(catalog, "SELECT dataset, count(*) FROM rationales GROUP BY ALL")
    result.columns, result.rows, result.truncated, result.elapsed_s
"""
from __future__ import annotations

import collections
import functools
import io
import json
import math
import pickle
import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from .catalog import Catalog
from .objects import is_remote
from .views import ViewFile, create_views
from .settings import get_setting
from .sql_worker import WorkerKilled, WorkerProcess

ALLOWED = "SELECT (incl. WITH, VALUES, FROM ..., DESCRIBE, SHOW, SUMMARIZE) or EXPLAIN [ANALYZE] SELECT"
TABLES = ("datasets", "jobs", "shards", "runs", "examples", "rationales", "rationale_tokens")
TABLE_FUNCTIONS = frozenset({
    "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema", "parquet_file_metadata",
    "parquet_kv_metadata", "range", "generate_series", "unnest", "glob", "json_each", "json_tree",
    "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_functions", "duckdb_keywords",
    "duckdb_schemas", "duckdb_settings", "duckdb_tables", "duckdb_types", "duckdb_views", "pragma_table_info",
})
"""Table functions user SQL may call; Parquet readers see only the store (allowed_directories)."""
REFUSED_FUNCTIONS = frozenset({"write_log", "setseed", "nextval", "setval", "currval"})
"""Scalar functions with effects beyond their result (DuckDB's has_side_effects, less the harmless random/uuid)."""
_LIVE_TABLES = ("datasets", "jobs", "shards", "runs")
_EXPLAIN = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?\b", re.IGNORECASE)
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class SQLRefused(ValueError):
    """The statement is not allowed in the sandbox, or broke one of its limits; the message says which."""


class SQLTimeout(RuntimeError):
    """The query ran past the time limit and was stopped."""


@dataclass
class SQLResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool
    elapsed_s: float
    max_rows: int
    types: list[str] = field(default_factory=list)

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]


# ------------------------------------------------------------------ statement checking
def check_statement(sql: str, max_chars: int | None = None) -> str:
    """Return the single allowed statement in `sql`, or raise SQLRefused naming what is allowed."""
    max_chars = max_chars or get_setting("sql_max_query_chars")
    if len(sql) > max_chars:
        raise SQLRefused(f"query is {len(sql)} characters, over sql_max_query_chars={max_chars}")
    return _allowed_statement(sql)


@functools.lru_cache(maxsize=1024)
def _allowed_statement(sql: str) -> str:
    """check_statement's verdict on one text, kept for the texts a service sees again and again (a
    dashboard's queries): parsing twice costs about a millisecond. Refusals raise and are not kept."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SQLRefused(f"SQL does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise SQLRefused(f"give exactly one statement (got {len(statements)}); allowed: {ALLOWED}")
    stmt = statements[0]
    kind = stmt.type
    checked = stmt.query
    if kind == duckdb.StatementType.EXPLAIN:
        checked = _EXPLAIN.sub("", stmt.query, count=1)
        try:
            inner_kinds = [s.type for s in duckdb.extract_statements(checked)] if checked.strip() else []
        except duckdb.Error:
            inner_kinds = []
        if inner_kinds != [duckdb.StatementType.SELECT]:
            raise SQLRefused(f"EXPLAIN is allowed only for a SELECT; allowed: {ALLOWED}")
    elif kind != duckdb.StatementType.SELECT:
        name = kind.name if hasattr(kind, "name") else str(kind)
        raise SQLRefused(
            f"{name} statements are refused: this connection is read-only. Allowed: {ALLOWED}. "
            f"Tables: {', '.join(TABLES)}")
    check_functions(checked)
    return stmt.query


_PARSER: duckdb.DuckDBPyConnection | None = None
_PARSER_LOCK = threading.Lock()


def _parse_tree(select_sql: str) -> dict:
    global _PARSER
    with _PARSER_LOCK:
        if _PARSER is None:
            _PARSER = duckdb.connect(":memory:")
        text = _PARSER.execute("SELECT json_serialize_sql(?)", [select_sql]).fetchone()[0]
    return json.loads(text)


def _function_names(node: Any, table: set[str], scalar: set[str]) -> None:
    """Collect table-function and other function names anywhere in a json_serialize_sql tree."""
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            fn = node["function"]
            table.add(str(fn.get("function_name", "")).lower())
            _function_names(fn.get("arguments"), table, scalar)
            rest = {k: v for k, v in node.items() if k != "function"}
            _function_names(rest, table, scalar)
            return
        if "function_name" in node:
            scalar.add(str(node["function_name"]).lower())
        for value in node.values():
            _function_names(value, table, scalar)
    elif isinstance(node, list):
        for value in node:
            _function_names(value, table, scalar)


def check_functions(select_sql: str) -> None:
    """Refuse table functions outside TABLE_FUNCTIONS and the scalar functions in REFUSED_FUNCTIONS."""
    tree = _parse_tree(select_sql)
    if tree.get("error"):
        raise SQLRefused(f"this SELECT cannot be checked ({tree.get('error_message', 'unsupported syntax')}); "
                         f"rewrite it as a plain {ALLOWED}")
    table: set[str] = set()
    scalar: set[str] = set()
    _function_names(tree.get("statements"), table, scalar)
    bad_table = sorted(table - TABLE_FUNCTIONS)
    if bad_table:
        raise SQLRefused(
            f"table function {', '.join(bad_table)} is not allowed in the sandbox; allowed table functions: "
            f"{', '.join(sorted(TABLE_FUNCTIONS))} (Parquet readers see only the store). Tables: {', '.join(TABLES)}")
    bad_scalar = sorted(scalar & REFUSED_FUNCTIONS)
    if bad_scalar:
        raise SQLRefused(f"function {', '.join(bad_scalar)} changes state and is refused in the sandbox "
                         f"(refused: {', '.join(sorted(REFUSED_FUNCTIONS))})")


def check_time_limit(value: float | str | None) -> float:
    """A time limit in seconds: finite, positive and at most sql_max_time_limit_s (default sql_time_limit_s)."""
    cap = float(get_setting("sql_max_time_limit_s"))
    raw = get_setting("sql_time_limit_s") if value is None else value
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        raise SQLRefused(f"time limit {raw!r} is not a number of seconds; pass --time-limit SECONDS") from None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > cap:
        raise SQLRefused(f"time limit {raw!r} must be a finite number of seconds in (0, {cap:g}] "
                         f"(sql_max_time_limit_s={cap:g}; raise SALIENT_SQL_MAX_TIME_LIMIT_S for longer queries)")
    return seconds


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ------------------------------------------------------------------ connections
def lock_down(con: duckdb.DuckDBPyConnection, root: str, *, memory_limit: str | None = None,
              threads: int | None = None) -> None:
    """Lock a connection that will run user SQL: reads only under `root`, no settings changes afterwards.

    Call it after creating the tables and views the user may read. `memory_limit` (a size such
    as "1GB") and `threads` are set when given.
    """
    root = str(root).rstrip("/") + "/"
    # Order matters: allowed_directories and temp_directory cannot change once external access is off.
    con.execute("SET temp_directory = ''")
    con.execute("SET allowed_directories = ['" + root.replace("'", "''") + "']")
    con.execute("SET enable_external_access = false")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_progress_bar = false")
    if memory_limit is not None:
        con.execute(f"SET memory_limit = '{_memory(memory_limit)}'")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET lock_configuration = true")


def _memory(value: str) -> str:
    if not _SIZE.fullmatch(str(value)):
        raise ValueError(f"sql_memory_limit={value!r}: use a size like 512MB or 2GB")
    return str(value).strip()


def size_bytes(value: str, name: str) -> int:
    """'1GB' -> 10**9, '512MiB' -> 2**29 (DuckDB's units)."""
    m = _SIZE.fullmatch(str(value))
    if not m:
        raise ValueError(f"{name}={value!r}: use a size like 512MB or 2GB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def _copy_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, replace: bool = False) -> None:
    con.register("__snapshot", table)
    try:
        con.execute(f"CREATE {'OR REPLACE ' if replace else ''}TABLE {name} AS SELECT * FROM __snapshot")
    finally:
        con.unregister("__snapshot")


class WorkerState:
    """The worker process's side (storage.sql_worker): one locked-down connection, built from a plan."""

    def __init__(self):
        self.con: duckdb.DuckDBPyConnection | None = None
        self.registered = False  # the views read registered relations (an s3:// store; storage.views)
        self.locked: tuple | None = None  # (root, memory_limit, threads) the connection was locked down with

    def handle(self, request: tuple) -> tuple:
        kind = request[0]
        if kind == "build":
            return self.build(request[1])
        if kind == "replace":
            self._replace_tables(request[1])
            return ("ok",)
        if kind == "query":
            return self.query(*request[1:])
        raise ValueError(f"unknown request {kind!r}")

    def build(self, plan: dict) -> tuple:
        """Make the connection match `plan`. The first build opens and locks it down; a later one (the
        file lists changed: a shard commit, an ingest) refreshes the same connection in place: every
        table and view is CREATE OR REPLACE, and the locked settings and DuckDB's Parquet footer cache
        stay. A new connection per commit cost each worker 50-80 ms of a busy machine, during which
        every query waited."""
        if self.con is not None and self.locked == self._lock_key(plan):
            self._replace_tables(plan["tables"])
            create_views(self.con, *plan["files"])
            return ("ok",)
        if self.con is not None:
            self.con.close()
            self.con = None
        con = duckdb.connect(":memory:")
        try:
            for name, data in plan["tables"].items():
                _copy_table(con, name, _from_ipc(data))
            # shards and dataset parts are never rewritten (a new file is a new path and mtime, which DuckDB
            # checks), so their Parquet footers are read once per worker, not once per query
            con.execute("SET parquet_metadata_cache = true")
            create_views(con, *plan["files"])  # checks new files' footers here, in the worker
            lock_down(con, plan["root"], memory_limit=plan["memory_limit"], threads=plan["threads"])
        except BaseException:
            con.close()
            raise
        self.con = con
        self.locked = self._lock_key(plan)
        self.registered = is_remote(plan["root"])
        return ("ok",)

    def _replace_tables(self, tables: dict[str, bytes]) -> None:
        """CREATE OR REPLACE each catalog table from its Arrow IPC bytes."""
        for name, data in tables.items():
            _copy_table(self.con, name, _from_ipc(data), replace=True)

    @staticmethod
    def _lock_key(plan: dict) -> tuple:
        """What lock_down fixed on the connection: a plan with other values needs a new connection."""
        return plan["root"], plan["memory_limit"], plan["threads"]

    def query(self, statement: str, max_rows: int, max_result_bytes: int) -> tuple:
        # an s3:// store's views read relations registered on the connection itself, which a cursor cannot see
        cur = self.con if self.registered else self.con.cursor()
        try:
            start = time.perf_counter()
            cur.execute(statement)
            columns = [d[0] for d in cur.description or []]
            types = [str(d[1]) for d in cur.description or []]
            rows = cur.fetchmany(max_rows + 1)
            elapsed = time.perf_counter() - start
        finally:
            if cur is not self.con:
                cur.close()
        blob = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
        if len(blob) > max_result_bytes:
            return ("error", "ResultTooLarge", f"the result is {len(blob):,} bytes")
        return ("result", columns, types, blob, elapsed)


# ------------------------------------------------------------------ the sandbox (parent side)
@dataclass
class _Slot:
    """One worker process of a sandbox and the catalog state (generation, version) its connection holds."""

    worker: WorkerProcess | None = None
    generation: int | None = None
    version: int | None = None

    def drop(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.worker, self.generation, self.version = None, None, None


@dataclass
class _Turn:
    """A query waiting for a slot: `_give` puts the freed slot here and sets `handed`."""

    handed: threading.Event = field(default_factory=threading.Event)
    slot: _Slot | None = None


class Sandbox:
    """Locked-down worker processes over one catalog's snapshot: up to `sql_workers` queries at once.

    Workers start as queries need them (a process that runs one query at a time has one) and stay:
    each keeps its connection, tables and views between queries and re-reads the catalog only when it
    changed. A worker killed at a limit is replaced by the next query that needs one.
    """

    def __init__(self, catalog: Catalog, *, memory_limit: str | None = None, threads: int | None = None,
                 workers: int | None = None):
        self._catalog = weakref.ref(catalog)  # the cached sandbox must not keep its catalog alive
        self.memory_limit = _memory(memory_limit or get_setting("sql_memory_limit"))
        self.threads = threads or get_setting("sql_threads")
        self.memory_bound = (size_bytes(self.memory_limit, "sql_memory_limit")
                             + size_bytes(get_setting("sql_worker_overhead"), "sql_worker_overhead"))
        self.workers = int(workers or get_setting("sql_workers"))
        self._slots: list[_Slot] = []
        self._idle: list[_Slot] = []
        self._waiting: collections.deque[_Turn] = collections.deque()  # queries waiting for a slot, oldest first
        self._changed = threading.Condition()
        self._update_lock = threading.Lock()
        self._update: tuple[tuple, tuple] | None = None  # ((generation, version, rebuild), request); _update_for

    @property
    def catalog(self) -> Catalog:
        cat = self._catalog()
        if cat is None:
            raise RuntimeError("the catalog of this SQL sandbox was closed and collected; open a new Catalog")
        return cat

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._changed:
            return [s.worker.proc.pid for s in self._slots if s.worker is not None and s.worker.alive]

    def _plan(self, tables: dict, files) -> dict:
        """What the worker needs to build its connection: catalog tables as Arrow IPC and the view files."""
        return {
            "tables": {name: _ipc(table) for name, table in tables.items()},
            "files": files, "root": str(self.catalog.store.root),
            "memory_limit": self.memory_limit, "threads": int(self.threads),
        }

    def _take(self) -> _Slot:
        """An idle slot (the one used last, so a sequential caller keeps one worker), a new one while fewer
        than `workers` exist, else the next slot freed after every query that waited before this one.

        Waiting is first come, first served: `_give` hands a freed slot to the oldest waiter rather than
        waking all of them to race for it. With a race (Condition.notify_all) the unlucky query of a
        busy service lost it again and again: at 32 concurrent clients, 1 query in 100 waited 0.3-0.6 s
        for a worker while each query ran in 3-15 ms."""
        with self._changed:
            if self._idle:
                return self._idle.pop()
            if len(self._slots) < self.workers:
                slot = _Slot()
                self._slots.append(slot)
                return slot
            turn = _Turn()
            self._waiting.append(turn)
        turn.handed.wait()
        return turn.slot

    def _give(self, slot: _Slot) -> None:
        with self._changed:
            if self._waiting:
                turn = self._waiting.popleft()
                turn.slot = slot
                turn.handed.set()
            else:
                self._idle.append(slot)
                self._changed.notify_all()  # refresh() waits for every slot to be idle

    def _ready_worker(self, slot: _Slot) -> WorkerProcess:
        """A live worker in `slot` whose connection matches the catalog. Nothing is opened while
        catalog.duckdb is unchanged (its `catalog_state` comes from the catalog's read cache); else the
        worker is brought up to date with `_update_for`."""
        build_deadline = time.monotonic() + float(get_setting("sql_max_time_limit_s"))
        if slot.worker is None or not slot.worker.alive:
            slot.drop()
            slot.worker = WorkerProcess(self.memory_bound)
        try:
            if self.catalog.state() == (slot.generation, slot.version):  # the read cache: no open while nothing changed
                return slot.worker
            request, generation, version = self._update_for(slot)
            if request is not None:
                self._answer(slot.worker.call(request, build_deadline))
            slot.generation, slot.version = generation, version
        except BaseException:
            slot.drop()
            raise
        return slot.worker

    def _update_for(self, slot: _Slot) -> tuple[tuple | None, int, int]:
        """(request, generation, version): what brings `slot`'s worker to the catalog's current state.

        ("build", plan) when the file lists changed (generation: a commit, an ingest, a rebuild; the
        worker checks only new files' footers, see storage.views), ("replace", tables) when only the
        live tables did (version: any other write), None when the slot is current. One short read-only
        open per catalog state: the request is kept and the next slot that needs the same one reuses it,
        so after a commit every worker catches up from one read of the catalog."""
        cat = self.catalog
        with self._update_lock, cat._reading():
            generation, version = cat.state()
            rebuild = slot.generation != generation
            if not rebuild and slot.version == version:
                return None, generation, version
            key = (generation, version, rebuild)
            if self._update is None or self._update[0] != key:
                if rebuild:
                    request = ("build", self._plan(cat.snapshot_tables(), cat.view_files()))
                else:
                    request = ("replace", {n: _ipc(t) for n, t in cat.snapshot_tables(_LIVE_TABLES).items()})
                self._update = (key, request)
            return self._update[1], generation, version

    def warm(self) -> None:
        """Start every worker and bring its connection up to date now (the service does this at start), so
        the first queries do not wait for a process start. Queries arriving meanwhile wait their turn."""
        slots = [self._take() for _ in range(self.workers)]
        try:
            for slot in slots:
                self._ready_worker(slot)
        finally:
            for slot in slots:
                self._give(slot)

    def refresh(self) -> None:
        """Drop the workers (after their running queries) so the next query sees the catalog tables as they are now."""
        with self._changed:
            while len(self._idle) < len(self._slots):
                self._changed.wait()
            for slot in self._slots:
                slot.drop()
            self._update = None

    def close(self) -> None:
        self.refresh()

    def run(self, sql: str, *, max_rows: int | None = None, time_limit_s: float | None = None) -> SQLResult:
        """Run one allowed statement under the limits. Raises SQLRefused, SQLTimeout, or duckdb.Error."""
        max_rows = int(max_rows if max_rows is not None else get_setting("sql_max_rows"))
        if max_rows <= 0:
            raise SQLRefused("max rows must be positive (--limit N)")
        time_limit_s = check_time_limit(time_limit_s)
        statement = check_statement(sql)
        slot = self._take()
        try:
            worker = self._ready_worker(slot)
            start = time.perf_counter()
            try:
                answer = worker.call(("query", statement, max_rows, int(get_setting("sql_max_result_bytes"))),
                                     time.monotonic() + time_limit_s)
            except WorkerKilled as exc:
                slot.drop()
                raise self._killed(exc, time_limit_s) from None
            finally:
                elapsed = time.perf_counter() - start
        finally:
            self._give(slot)
        _, columns, types, blob, _ = self._answer(answer)
        rows = pickle.loads(blob)
        return SQLResult(columns, rows[:max_rows], len(rows) > max_rows, elapsed, max_rows, types)

    def _killed(self, exc: WorkerKilled, time_limit_s: float) -> Exception:
        if exc.reason == "time":
            return SQLTimeout(
                f"query stopped after the {time_limit_s:g} s time limit (sql_time_limit_s); "
                "narrow it (WHERE, LIMIT, fewer files) or pass --time-limit / set SALIENT_SQL_TIME_LIMIT_S")
        return SQLRefused(
            f"query stopped: its worker process went past the memory bound of {self.memory_bound / 2**20:.0f} MiB "
            f"(sql_memory_limit={self.memory_limit} + sql_worker_overhead; {exc.detail or exc.reason}); "
            "aggregate or filter more, or raise SALIENT_SQL_MEMORY_LIMIT")

    def _answer(self, answer: tuple) -> tuple:
        """Return an ok/result answer; turn an error answer into the exception the caller expects."""
        if answer[0] != "error":
            return answer
        _, cls, message = answer
        first = message.strip().splitlines()[0] if message.strip() else cls
        if cls == "PermissionException":
            return _raise(SQLRefused(f"{first}. The sandbox reads only the store ({self.catalog.store.root}) "
                                     f"through the tables {', '.join(TABLES)}"))
        if cls == "Error" and "requires the extension httpfs" in message:
            return _raise(SQLRefused(
                f"this DuckDB has no httpfs extension, so SQL cannot name object-store paths ({first.split(' requires')[0]}); "
                f"the tables {', '.join(TABLES)} read the store's objects: query those (docs/storage.md 'Object storage')"))
        if cls == "OutOfMemoryException":
            return _raise(SQLRefused(
                f"query needs more than sql_memory_limit={self.memory_limit} ({first}); aggregate or filter "
                "more, or raise SALIENT_SQL_MEMORY_LIMIT"))
        if cls == "ResultTooLarge":
            return _raise(SQLRefused(f"{first}, over sql_max_result_bytes={get_setting('sql_max_result_bytes')}; "
                                     "select fewer or shorter columns, or pass a lower --limit"))
        if cls == "InvalidInputException" and ("configuration has been locked" in message
                                               or "disabled by configuration" in message):
            return _raise(SQLRefused(f"{first}; settings are fixed in the sandbox"))
        error_type = getattr(duckdb, cls, None)
        if isinstance(error_type, type) and issubclass(error_type, duckdb.Error):
            return _raise(error_type(message))
        raise RuntimeError(f"SQL worker failed: {cls}: {message}")


def _raise(exc: Exception):
    raise exc


_SANDBOXES: "weakref.WeakKeyDictionary[Catalog, Sandbox]" = weakref.WeakKeyDictionary()
_SANDBOXES_LOCK = threading.Lock()


def sandbox_for(catalog: Catalog) -> Sandbox:
    """The cached sandbox of `catalog` (one per catalog object)."""
    with _SANDBOXES_LOCK:
        box = _SANDBOXES.get(catalog)
        if box is None:
            box = _SANDBOXES[catalog] = Sandbox(catalog)
        return box


def run_sql(catalog: Catalog, sql: str, *, max_rows: int | None = None, time_limit_s: float | None = None) -> SQLResult:
    """Run user SQL read-only against `catalog`'s store; see the module docstring for the limits."""
    return sandbox_for(catalog).run(sql, max_rows=max_rows, time_limit_s=time_limit_s)
