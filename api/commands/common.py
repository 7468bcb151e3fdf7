"""Helpers shared by the subcommands: opening the store, printing tables."""
from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from typing import Any, Iterable

from storage import Catalog, Store


def open_catalog(args) -> Catalog:
    """The catalog of --store. It holds no connection: each operation opens catalog.duckdb briefly,
    so this command runs beside job drivers, trainers and the service on the same store."""
    return Catalog.open(Store.open(args.store))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def print_rows(rows: list[dict] | Iterable[tuple], columns: list[str] | None = None, fmt: str = "table", out=None) -> None:
    """Print rows as an aligned table, CSV or JSON lines."""
    out = out or sys.stdout
    rows = list(rows)
    if rows and isinstance(rows[0], dict):
        columns = columns or list(rows[0].keys())
        tuples = [tuple(r.get(c) for c in columns) for r in rows]
    else:
        tuples = [tuple(r) for r in rows]
    columns = columns or []
    if fmt == "json":
        for t in tuples:
            out.write(json.dumps(dict(zip(columns, t)), default=str) + "\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")  # \n as DuckDB's CLI writes, not csv's default \r\n
        w.writerow(columns)
        w.writerows([[_cell(v) for v in t] for t in tuples])
    else:
        cells = [[_cell(v) for v in t] for t in tuples]
        widths = [min(60, max([len(c)] + [len(r[i]) for r in cells])) for i, c in enumerate(columns)]
        out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
        for r in cells:
            out.write("  ".join((v if len(v) <= w else v[: w - 1] + "…").ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
