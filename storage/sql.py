"""The sandboxed, read-only SQL runner behind `salient sql` and the REST /sql endpoint.

User SQL never runs on the catalog's own connection, and never writes catalog.duckdb. A sandbox
is a separate in-memory DuckDB database holding copies of the catalog tables (datasets, jobs,
shards, runs), read in one read-only open, and the views examples / rationales /
rationale_tokens built there over the catalog's file lists (storage.views: a damaged file makes
only the queries that read it fail), locked down with

* a statement allowlist checked by DuckDB's own parser (`duckdb.extract_statements`): one
  statement, of type SELECT (which covers WITH, VALUES, FROM-first, DESCRIBE, SHOW, SUMMARIZE,
  PIVOT-free selects) or EXPLAIN [ANALYZE] of a SELECT;
* `allowed_directories=[<store root>/]` then `enable_external_access=false`: table functions may
  read the store and nothing else (read_csv('/etc/passwd') and `..` paths are refused by DuckDB);
* `python_enable_replacements=false` (no reading Python variables), no temp directory (nothing
  spills to disk), `memory_limit`, `threads`, then `lock_configuration=true` (SET/RESET refused);
* a time limit: a `threading.Timer` calls `interrupt()` on the query's cursor;
* a row cap: at most `max_rows + 1` rows are fetched; the result reports `truncated`.

Limits are the settings in storage.settings (sql_time_limit_s, sql_max_rows, sql_memory_limit,
sql_threads, sql_max_query_chars).

    result = run_sql(catalog, "SELECT dataset, count(*) FROM rationales GROUP BY ALL")
    result.columns, result.rows, result.truncated, result.elapsed_s
"""
from __future__ import annotations

import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import duckdb

from .catalog import Catalog
from .views import ViewFile, create_views
from .settings import get_setting

ALLOWED = "SELECT (incl. WITH, VALUES, FROM ..., DESCRIBE, SHOW, SUMMARIZE) or EXPLAIN [ANALYZE] SELECT"
TABLES = ("datasets", "jobs", "shards", "runs", "examples", "rationales", "rationale_tokens")
_LIVE_TABLES = ("datasets", "jobs", "shards", "runs")
_EXPLAIN = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?\b", re.IGNORECASE)


class SQLRefused(ValueError):
    """The statement is not allowed in the sandbox, or broke one of its limits; the message says which."""


class SQLTimeout(RuntimeError):
    """The query ran past the time limit and was interrupted."""


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


def check_statement(sql: str, max_chars: int | None = None) -> str:
    """Return the single allowed statement in `sql`, or raise SQLRefused naming what is allowed."""
    max_chars = max_chars or get_setting("sql_max_query_chars")
    if len(sql) > max_chars:
        raise SQLRefused(f"query is {len(sql)} characters, over sql_max_query_chars={max_chars}")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SQLRefused(f"SQL does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise SQLRefused(f"give exactly one statement (got {len(statements)}); allowed: {ALLOWED}")
    stmt = statements[0]
    kind = stmt.type
    if kind == duckdb.StatementType.EXPLAIN:
        inner = _EXPLAIN.sub("", stmt.query, count=1)
        try:
            inner_kinds = [s.type for s in duckdb.extract_statements(inner)] if inner.strip() else []
        except duckdb.Error:
            inner_kinds = []
        if inner_kinds != [duckdb.StatementType.SELECT]:
            raise SQLRefused(f"EXPLAIN is allowed only for a SELECT; allowed: {ALLOWED}")
    elif kind != duckdb.StatementType.SELECT:
        name = kind.name if hasattr(kind, "name") else str(kind)
        raise SQLRefused(
            f"{name} statements are refused: this connection is read-only. Allowed: {ALLOWED}. "
            f"Tables: {', '.join(TABLES)}")
    return stmt.query


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class Sandbox:
    """A locked-down in-memory DuckDB over one catalog's snapshot. One query at a time."""

    def __init__(self, catalog: Catalog, *, memory_limit: str | None = None, threads: int | None = None):
        self.catalog = catalog
        self.memory_limit = memory_limit or get_setting("sql_memory_limit")
        self.threads = threads or get_setting("sql_threads")
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._generation: int | None = None
        self._version: int | None = None

    def _build(self, tables: dict, files: tuple[list[ViewFile], list[ViewFile]]) -> duckdb.DuckDBPyConnection:
        cat = self.catalog
        con = duckdb.connect(":memory:")
        try:
            for name, table in tables.items():
                self._copy_table(con, name, table)
            create_views(con, *files)
            root = str(cat.store.root).rstrip("/") + "/"
            # Order matters: allowed_directories and temp_directory cannot change once external access is off.
            con.execute("SET temp_directory = ''")
            con.execute("SET allowed_directories = ['" + root.replace("'", "''") + "']")
            con.execute("SET enable_external_access = false")
            con.execute("SET python_enable_replacements = false")
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET autoload_known_extensions = false")
            con.execute(f"SET memory_limit = '{_memory(self.memory_limit)}'")
            con.execute(f"SET threads = {int(self.threads)}")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return con

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The sandbox connection, up to date with the catalog as other processes change it.

        One read-only open of catalog.duckdb reads its (generation, version); the views are rebuilt
        when the file lists changed (generation: a commit, an ingest, a rebuild; files already seen
        are not re-checked, see storage.views), the tables re-copied when anything else was written.
        """
        cat = self.catalog
        tables, files = None, None
        with cat._reading():  # one short read-only open for the state and whatever must be re-read
            generation, version = cat.state()
            rebuild = self._con is None or self._generation != generation
            if rebuild:
                tables, files = cat.snapshot_tables(), cat.view_files()
            elif self._version != version:
                tables = cat.snapshot_tables(_LIVE_TABLES)
        # the views are built after the catalog is closed again: checking new files' footers holds no lock
        if rebuild:
            if self._con is not None:
                self._con.close()
                self._con = None
            self._con = self._build(tables, files)
        elif tables is not None:
            for name, table in tables.items():
                self._copy_table(self._con, name, table, replace=True)
        self._generation, self._version = generation, version
        return self._con

    @staticmethod
    def _copy_table(con: duckdb.DuckDBPyConnection, name: str, table, replace: bool = False) -> None:
        con.register("__snapshot", table)
        try:
            con.execute(f"CREATE {'OR REPLACE ' if replace else ''}TABLE {name} AS SELECT * FROM __snapshot")
        finally:
            con.unregister("__snapshot")

    def refresh(self) -> None:
        """Drop the cached connection so the next query sees the catalog tables as they are now."""
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = None

    def close(self) -> None:
        self.refresh()

    def run(self, sql: str, *, max_rows: int | None = None, time_limit_s: float | None = None) -> SQLResult:
        """Run one allowed statement under the limits. Raises SQLRefused, SQLTimeout, or duckdb.Error."""
        max_rows = int(max_rows if max_rows is not None else get_setting("sql_max_rows"))
        time_limit_s = float(time_limit_s if time_limit_s is not None else get_setting("sql_time_limit_s"))
        if max_rows <= 0 or time_limit_s <= 0:
            raise SQLRefused("max rows and time limit must be positive (--limit N, --time-limit SECONDS)")
        statement = check_statement(sql)
        with self._lock:
            cur = self.connection().cursor()
            timer = threading.Timer(time_limit_s, _interrupt, [cur])
            timer.daemon = True
            start = time.perf_counter()
            timer.start()
            try:
                cur.execute(statement)
                columns = [d[0] for d in cur.description or []]
                types = [str(d[1]) for d in cur.description or []]
                rows = cur.fetchmany(max_rows + 1)
            except duckdb.InterruptException:
                raise SQLTimeout(
                    f"query interrupted after the {time_limit_s:g} s time limit (sql_time_limit_s); "
                    "narrow it (WHERE, LIMIT, fewer files) or pass --time-limit / set SALIENT_SQL_TIME_LIMIT_S") from None
            except duckdb.PermissionException as exc:
                raise SQLRefused(
                    f"{_first_line(exc)}. The sandbox reads only the store ({self.catalog.store.root}) "
                    f"through the tables {', '.join(TABLES)}") from None
            except duckdb.OutOfMemoryException as exc:
                raise SQLRefused(
                    f"query needs more than sql_memory_limit={self.memory_limit} ({_first_line(exc)}); aggregate or filter "
                    "more, or raise SALIENT_SQL_MEMORY_LIMIT") from None
            except duckdb.InvalidInputException as exc:
                if "configuration has been locked" in str(exc) or "disabled by configuration" in str(exc):
                    raise SQLRefused(f"{_first_line(exc)}; settings are fixed in the sandbox") from None
                raise
            finally:
                timer.cancel()
                elapsed = time.perf_counter() - start
                cur.close()
        truncated = len(rows) > max_rows
        return SQLResult(columns, rows[:max_rows], truncated, elapsed, max_rows, types)


def _interrupt(cur: duckdb.DuckDBPyConnection) -> None:
    """Timer callback; the query may have finished and its cursor closed in the meantime."""
    try:
        cur.interrupt()
    except duckdb.Error:
        pass


def _memory(value: str) -> str:
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", str(value), re.IGNORECASE):
        raise ValueError(f"sql_memory_limit={value!r}: use a size like 512MB or 2GB")
    return str(value).strip()


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
