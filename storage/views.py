"""The examples / rationales / rationale_tokens views, built over checked file lists.

Views are never stored in catalog.duckdb: every reader (the SQL sandbox, `Catalog.query`) builds
them on its own connection from the catalog's file lists, so reading never writes the catalog.

A damaged file never takes the store down (docs/storage.md "Recovery runbook"). Building the
views checks each file's Parquet footer (`check_file`, cached per path, size and mtime, so a
long-lived process checks only new files: O(1) files per committed shard). Healthy files go
into one `read_parquet` list; each missing or unreadable file becomes a guard branch instead:

    SELECT 'job-x' AS job_id, 'cqa' AS dataset, 3 AS shard_index,
           CAST(error('<file> is unreadable ...; run salient catalog check ...') AS VARCHAR) AS example_id, ...
    FROM (SELECT 1) WHERE error('...') IS NULL

Its identifying columns are constants, so a query filtering on another job / dataset / split
prunes the branch and runs over the healthy files; a query that would read the damaged file's
rows fails with the message naming the file and the fix.

Files on object storage (`storage.objects.ObjectPath`, an s3:// store) are checked the same way
(stamp: the object's size and last-modified time). DuckDB reads them without any extension: each
healthy group becomes a pyarrow dataset over the S3 filesystem registered on the connection
(`__view_<n>`), and the view selects from that relation, so no object path appears in SQL and the
sandbox's lock-down (no file access outside the store) is unchanged.
"""
from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from .objects import ObjectPath, arrow_dataset, list_stats, parquet_source
from .schemas import DATASET_SCHEMA, RATIONALE_SCHEMA

_CACHE: dict[str, tuple[tuple[int, int], str | None, str | None]] = {}  # path -> (stamp, reason, schema)
_CACHE_LOCK = threading.Lock()
_REGISTERED = itertools.count()  # names of the object-store relations registered on connections
VIEWS = ("examples", "rationales", "rationale_tokens")


@dataclass(frozen=True)
class ViewFile:
    """One file a view reads, with the constants that identify its rows (column -> value)."""

    path: Path | ObjectPath
    keys: dict


def check_file(path: str | os.PathLike) -> str | None:
    """None when `path` is a readable Parquet file, else why not ("missing", "unreadable: ...").

    Reads the footer only; results are cached per (path, size, mtime_ns).
    """
    return _checked(path)[0]


def _checked(path, listed: dict | None = None) -> tuple[str | None, str | None]:
    """(reason or None, the file's Arrow schema as text or None), cached per (path, size, mtime_ns).

    listed: for objects, {key: stat} from `storage.objects.list_stats` (absent key: missing)."""
    obj = path if isinstance(path, ObjectPath) else None
    path = str(path)
    try:
        if obj is not None and listed is not None:
            st = listed.get(obj.key)
            if st is None:
                raise FileNotFoundError(path)
        else:
            st = obj.stat() if obj is not None else os.stat(path)
    except FileNotFoundError:
        return "missing", None
    except OSError as exc:
        return f"unreadable: {exc}", None
    stamp = (st.st_size, st.st_mtime_ns)
    with _CACHE_LOCK:
        hit = _CACHE.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1], hit[2]
    try:
        schema = str(pq.read_metadata(parquet_source(obj) if obj is not None else path)
                     .schema.to_arrow_schema().remove_metadata())
        reason = None
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for truncated or foreign files
        schema = None
        reason = f"unreadable ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
    with _CACHE_LOCK:
        _CACHE[path] = (stamp, reason, schema)
    return reason, schema


def damaged_message(path: Path, reason: str, what: str) -> str:
    """The error a query gets when it needs a damaged file: the file, why, and the fix."""
    return (f"{what} {path} is {reason}: only queries that read it fail. Run `salient catalog check` to list "
            f"damaged files, then `salient catalog rebuild --quarantine` (moves them aside) and re-create the data "
            f"(`salient attribute --resume JOB` for shards, `salient datasets add` for dataset parts); "
            f"see docs/storage.md 'Recovery runbook'")


def _sql_str(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join(_sql_str(str(p)) for p in paths) + "]"


def _guard(columns: list[tuple[str, str]], f: ViewFile, reason: str, what: str) -> str:
    msg = _sql_str(damaged_message(f.path, reason, what))
    cols = []
    for name, dtype in columns:
        if name in f.keys:
            cols.append(f'CAST({_sql_str(f.keys[name])} AS {dtype}) AS "{name}"')
        else:
            cols.append(f'CAST(error({msg}) AS {dtype}) AS "{name}"')
    return f"SELECT {', '.join(cols)} FROM (SELECT 1) WHERE error({msg}) IS NULL"


_COLUMNS: dict[str, list[tuple[str, str]]] = {}


def _columns(empty: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of an empty fallback table, from a scratch connection (computed once)."""
    if empty not in _COLUMNS:
        con = duckdb.connect(":memory:")
        try:
            create_empty_tables(con)
            for table in ("_empty_examples", "_empty_rationales"):
                _COLUMNS[table] = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]
        finally:
            con.close()
    return _COLUMNS[empty]


def _view(empty: str, files: list[ViewFile], what: str, con: duckdb.DuckDBPyConnection | None = None) -> str:
    groups: dict[str, list[Path]] = {}  # schema -> healthy files with it, in order
    branches = []
    objects = [f.path for f in files if isinstance(f.path, ObjectPath)]
    listed = list_stats(objects) if objects else None  # one LIST per prefix instead of a HEAD per object
    for f in files:
        reason, schema = _checked(f.path, listed)
        if reason is None:
            groups.setdefault(schema, []).append(f.path)
        else:
            branches.append(_guard(_columns(empty), f, reason, what))
    # One read_parquet per schema binds from its first file; the groups (older shard schema
    # versions, datasets with different extra columns) are unioned by name, missing columns NULL.
    healthy = [f"SELECT * FROM {parquet_scan(paths, con)}" for paths in groups.values()]
    return " UNION ALL BY NAME ".join((healthy or [f"SELECT * FROM {empty}"]) + branches)


def parquet_scan(paths: list, con: duckdb.DuckDBPyConnection | None, *, union_by_name: bool = False) -> str:
    """The FROM item reading the Parquet `paths`: read_parquet over local files; for objects (an s3:// store)
    a pyarrow dataset registered on `con` as `__view_<n>` (DuckDB needs no extension and sees no path).

    union_by_name: files with different columns are read as their union (missing columns NULL); without
    it every file has the first one's schema (a view group, storage.views)."""
    if not isinstance(paths[0], ObjectPath):
        return f"read_parquet({_sql_list(paths)}{', union_by_name=true' if union_by_name else ''})"
    if con is None:
        raise ValueError("a scan of objects on an s3:// store needs the connection to register them on")
    name = f"__view_{next(_REGISTERED)}"
    schema = None if union_by_name else pq.read_schema(parquet_source(paths[0])).remove_metadata()
    con.register(name, arrow_dataset(paths, schema=schema))
    return name


def view_statements(parts: list[ViewFile], shards: list[ViewFile], *, temp: bool = False,
                    con: duckdb.DuckDBPyConnection | None = None) -> list[str]:
    """SQL creating the three views (TEMP ones when `temp`) over the files; the connection that runs
    it needs the fallback tables of `create_empty_tables` first.

    parts: active dataset parts, keys {"dataset", "split"}; shards: committed shards, keys
    {"job_id", "dataset", "shard_index"}. Each file's footer is checked (`check_file`); a damaged
    one becomes a guard branch (module docstring). Files on object storage are registered on `con`.
    """
    kind = "TEMP " if temp else ""
    return [
        f"CREATE OR REPLACE {kind}VIEW examples AS {_view('_empty_examples', parts, 'dataset part', con)}",
        f"CREATE OR REPLACE {kind}VIEW rationales AS {_view('_empty_rationales', shards, 'shard', con)}",
        f"CREATE OR REPLACE {kind}VIEW rationale_tokens AS "
        "SELECT example_id, dataset, split, job_id, method, teacher_model, "
        "unnest(rationale) AS token, unnest(generate_series(1, len(rationale))) AS position "
        "FROM rationales WHERE rationale IS NOT NULL AND len(rationale) > 0",
    ]


def damaged_files(parts: list[ViewFile], shards: list[ViewFile]) -> list[Path]:
    """The files of the views that are missing or unreadable now."""
    return [f.path for f in parts + shards if check_file(f.path) is not None]


def create_views(con: duckdb.DuckDBPyConnection, parts: list[ViewFile], shards: list[ViewFile], *,
                 temp: bool = False) -> None:
    """Create the fallback tables and the three views on `con` (TEMP ones on a read-only catalog connection)."""
    create_empty_tables(con, temp=temp)
    for stmt in view_statements(parts, shards, temp=temp, con=con):
        con.execute(stmt)


def create_empty_tables(con: duckdb.DuckDBPyConnection, *, temp: bool = False) -> None:
    """The typed empty tables the views fall back to (and take their column types from)."""
    kind = "TEMP " if temp else ""
    con.register("__ex", DATASET_SCHEMA.empty_table())
    con.register("__ra", RATIONALE_SCHEMA.empty_table())
    try:
        # ingested parts carry a `dataset` column beside DATASET_SCHEMA (storage.ingest); so does the fallback
        con.execute(f"CREATE OR REPLACE {kind}TABLE _empty_examples AS SELECT *, NULL::VARCHAR AS dataset FROM __ex")
        con.execute(f"CREATE OR REPLACE {kind}TABLE _empty_rationales AS SELECT * FROM __ra")
    finally:
        con.unregister("__ex")
        con.unregister("__ra")
