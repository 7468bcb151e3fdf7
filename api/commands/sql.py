"""`salient sql "SELECT ..."`: read-only SQL over the store (storage.sql's sandbox).

Exit codes: 0 ok (a truncated result is still ok; a note goes to stderr), 1 the query hit the
time limit, 2 the statement was refused or is not valid SQL.
"""
from __future__ import annotations

import sys

import duckdb

from storage.settings import get_setting, setting
from storage.sql import ALLOWED, TABLES, SQLRefused, SQLTimeout, run_sql

from .common import open_catalog, print_rows

_EPILOG = f"""\
tables: {', '.join(TABLES)}
allowed: {ALLOWED}; files outside the store cannot be read.

examples:
  salient sql "SELECT name, split, rows FROM datasets WHERE active"
  salient sql "SELECT token, count(*) AS n FROM rationale_tokens GROUP BY token ORDER BY n DESC LIMIT 50"
  salient sql "SELECT r.example_id, e.target, r.rationale_text FROM rationales r JOIN examples e USING (example_id)" --format csv
  echo "SELECT count(*) FROM examples" | salient sql -
"""


def register(sub) -> None:
    import argparse

    p = sub.add_parser("sql", help="run one read-only SQL query over the store",
                       description="Run one read-only SQL statement in a sandbox with time, memory and row limits.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("query", metavar="SQL", help="the statement; '-' reads it from stdin")
    p.add_argument("--format", default="table", choices=["table", "csv", "json"], help="output format (json: one object per line)")
    rows = setting("sql_max_rows")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help=f"{rows.help} (default {rows.default}, or ${rows.env_var})")
    tl = setting("sql_time_limit_s")
    cap = setting("sql_max_time_limit_s")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help=f"{tl.help} (default {tl.default}, or ${tl.env_var}; at most {cap.default:g}, or ${cap.env_var})")
    p.set_defaults(func=cmd_sql)


def read_query(stream, max_chars: int) -> str:
    """At most `max_chars` characters of `stream`; a longer text is refused after reading only max_chars + 1."""
    text = stream.read(max_chars + 1)
    if len(text) > max_chars:
        raise SQLRefused(f"the query on stdin is over sql_max_query_chars={max_chars} characters "
                         "(raise SALIENT_SQL_MAX_QUERY_CHARS for longer SQL)")
    return text


def cmd_sql(args) -> int:
    try:
        query = read_query(sys.stdin, get_setting("sql_max_query_chars")) if args.query == "-" else args.query
    except SQLRefused as exc:
        print(f"salient: refused: {exc}", file=sys.stderr)
        return 2
    with open_catalog(args) as cat:
        try:
            result = run_sql(cat, query, max_rows=args.limit, time_limit_s=args.time_limit)
        except SQLRefused as exc:
            print(f"salient: refused: {exc}", file=sys.stderr)
            return 2
        except SQLTimeout as exc:
            print(f"salient: {exc}", file=sys.stderr)
            return 1
        except duckdb.Error as exc:
            msg = str(exc).strip()
            print(f"salient: SQL error: {msg}\n(tables: {', '.join(TABLES)}; "
                  "`salient sql \"DESCRIBE rationales\"` lists a table's columns)", file=sys.stderr)
            return 2
    print_rows(result.rows, columns=result.columns, fmt=args.format)
    if result.truncated:
        print(f"salient: truncated: showing the first {result.max_rows} rows; pass --limit N or add LIMIT/aggregation",
              file=sys.stderr)
    return 0
