"""The rows a job reads, without loading them: a dataset's active parts, sliced on demand.

    rows = DatasetRows.open(catalog, "cqa", split="train", limit=None)
    rows.num_rows                       # from the Parquet footers, no data read
    table = rows.slice(2000, 1000)      # rows [2000, 3000) as an Arrow table (EXAMPLE_COLUMNS)

`slice` reads only the row groups that overlap the requested range and keeps the last one decoded
(consecutive shards share it), so a job holds at most one shard plus one row group
(SALIENT_PARQUET_ROW_GROUP_SIZE rows) of the dataset at a time, whatever its size (bounded memory: the local executor streams shards, the Ray driver reads each shard when
it dispatches it).
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from storage import Catalog
from storage.objects import ObjectPath, parquet_source

EXAMPLE_COLUMNS = ("example_id", "input", "target", "choices", "split")


@dataclass
class _Part:
    path: str | ObjectPath
    start: int          # first row of this part in the job's row order
    group_starts: list  # first row of each row group, relative to the part
    rows: int


class DatasetRows:
    """The active parts of one dataset (optionally one split) in part order, cut at `limit` rows."""

    def __init__(self, parts: list[_Part], num_rows: int):
        self.parts, self.num_rows = parts, num_rows
        self._cached: tuple | None = None  # ((path, row group), table): at most one decoded row group

    @classmethod
    def open(cls, catalog: Catalog, dataset: str, split: str | None = None, limit: int | None = None) -> "DatasetRows":
        found = catalog.dataset_parts(dataset, split)
        if not found:
            known = sorted({d["name"] for d in catalog.datasets()})
            raise ValueError(f"no dataset {dataset!r}{f' split {split!r}' if split else ''} in the catalog "
                             f"(known: {', '.join(known) or 'none'}; list them with `salient datasets ls`); "
                             "ingest it first with `salient datasets add`")
        parts, n = [], 0
        for rel in found:
            path = catalog.store.absolute(rel)
            path = path if isinstance(path, ObjectPath) else str(path)  # an object of an s3:// store, or a file
            meta = pq.ParquetFile(parquet_source(path)).metadata
            starts, acc = [], 0
            for g in range(meta.num_row_groups):
                starts.append(acc)
                acc += meta.row_group(g).num_rows
            parts.append(_Part(path, n, starts, meta.num_rows))
            n += meta.num_rows
            if limit is not None and n >= limit:
                break
        return cls(parts, min(n, limit) if limit is not None else n)

    def slice(self, start: int, length: int) -> pa.Table:
        """Rows [start, start + length) (cut at num_rows) with the EXAMPLE_COLUMNS the part has."""
        stop = min(self.num_rows, start + length)
        tables = []
        for part in self.parts:
            lo, hi = max(start, part.start), min(stop, part.start + part.rows)
            if lo >= hi:
                continue
            lo, hi = lo - part.start, hi - part.start
            for g, g_start in enumerate(part.group_starts):
                g_stop = part.group_starts[g + 1] if g + 1 < len(part.group_starts) else part.rows
                if g_start < hi and lo < g_stop:
                    a, b = max(lo, g_start), min(hi, g_stop)
                    tables.append(self._group(part.path, g).slice(a - g_start, b - a))
        if not tables:
            return pa.table({c: pa.array([], pa.string()) for c in ("example_id", "input")})
        return pa.concat_tables(tables, promote_options="default")

    def _group(self, path: str, group: int) -> pa.Table:
        """One row group, decoded once while consecutive shards read it (only the last one is kept)."""
        if self._cached is None or self._cached[0] != (path, group):
            f = pq.ParquetFile(parquet_source(path))
            cols = [c for c in EXAMPLE_COLUMNS if c in f.schema_arrow.names]
            self._cached = ((path, group), f.read_row_group(group, columns=cols))
        return self._cached[1]

    def shards(self, shard_size: int, indices=None):
        """(index, table) per shard in `indices` (default: every shard), read one at a time."""
        n_shards = (self.num_rows + shard_size - 1) // shard_size
        for index in (range(n_shards) if indices is None else indices):
            yield index, self.slice(index * shard_size, shard_size)


def dataset_format(catalog: Catalog, dataset: str) -> str | None:
    rows = catalog.query("SELECT format FROM datasets WHERE name = ? AND active ORDER BY created_at DESC", [dataset])
    return rows[0]["format"] if rows else None
