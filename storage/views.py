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
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from .schemas import DATASET_SCHEMA, RATIONALE_SCHEMA

_CACHE: dict[str, tuple[tuple[int, int], str | None]] = {}
_CACHE_LOCK = threading.Lock()
VIEWS = ("examples", "rationales", "rationale_tokens")


@dataclass(frozen=True)
class ViewFile:
    """One file a view reads, with the constants that identify its rows (column -> value)."""

    path: Path
    keys: dict


def check_file(path: str | os.PathLike) -> str | None:
    """None when `path` is a readable Parquet file, else why not ("missing", "unreadable: ...").

    Reads the footer only; healthy results are cached per (path, size, mtime_ns).
    """
    path = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc}"
    stamp = (st.st_size, st.st_mtime_ns)
    with _CACHE_LOCK:
        hit = _CACHE.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        pq.read_metadata(path)
        reason = None
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for truncated or foreign files
        reason = f"unreadable ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
    with _CACHE_LOCK:
        _CACHE[path] = (stamp, reason)
    return reason


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


def _view(con, empty: str, files: list[ViewFile], what: str, union_by_name: bool) -> str:
    columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {empty}").fetchall()]
    healthy, branches = [], []
    for f in files:
        reason = check_file(f.path)
        if reason is None:
            healthy.append(f.path)
        else:
            branches.append(_guard(columns, f, reason, what))
    first = (f"SELECT * FROM read_parquet({_sql_list(healthy)}, union_by_name={str(union_by_name).lower()})" if healthy
             else f"SELECT * FROM {empty}")
    return " UNION ALL BY NAME ".join([first] + branches)


def create_views(con: duckdb.DuckDBPyConnection, parts: list[ViewFile], shards: list[ViewFile], *,
                 temp: bool = False) -> list[Path]:
    """Create the three views on `con` (TEMP ones when `temp`, e.g. on a read-only catalog connection).

    parts: active dataset parts, keys {"dataset", "split"}; shards: committed shards, keys
    {"job_id", "dataset", "shard_index"}. Returns the damaged files (missing or unreadable).
    """
    kind = "TEMP " if temp else ""
    _create_empty_tables(con, kind)
    damaged = [f.path for f in parts + shards if check_file(f.path) is not None]
    # Dataset parts may differ in their extra columns: union them by name (reads every part's footer
    # at bind time; parts are few). Shards all have RATIONALE_SCHEMA (storage.write_shard casts to it),
    # so the rationales view binds from its first file alone: creating it costs O(1) file reads.
    con.execute(f"CREATE OR REPLACE {kind}VIEW examples AS {_view(con, '_empty_examples', parts, 'dataset part', True)}")
    con.execute(f"CREATE OR REPLACE {kind}VIEW rationales AS {_view(con, '_empty_rationales', shards, 'shard', False)}")
    con.execute(
        f"CREATE OR REPLACE {kind}VIEW rationale_tokens AS "
        "SELECT example_id, dataset, split, job_id, method, teacher_model, "
        "unnest(rationale) AS token, unnest(generate_series(1, len(rationale))) AS position "
        "FROM rationales WHERE rationale IS NOT NULL AND len(rationale) > 0")
    return damaged


def _create_empty_tables(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    """The typed empty tables the views fall back to (and take their column types from)."""
    con.register("__ex", DATASET_SCHEMA.empty_table())
    con.register("__ra", RATIONALE_SCHEMA.empty_table())
    try:
        # ingested parts carry a `dataset` column beside DATASET_SCHEMA (storage.ingest); so does the fallback
        con.execute(f"CREATE OR REPLACE {kind}TABLE _empty_examples AS SELECT *, NULL::VARCHAR AS dataset FROM __ex")
        con.execute(f"CREATE OR REPLACE {kind}TABLE _empty_rationales AS SELECT * FROM __ra")
    finally:
        con.unregister("__ex")
        con.unregister("__ra")
