"""One split's rows on their way into a dataset part, in bounded memory (used by storage.ingest).

Pass 1 (`SplitSpool.add`): each Batch of mapped records becomes a table in the part's final
column layout (example_id, input, target, choices, split, dataset, extras..., source_index,
[llm_rationale, llm_label]) and is written at once, in row groups of parquet_row_group_size, to a
file in the ingest's private work directory. Per row only a hashed-id flag and a location number
are kept (9 bytes); repeated ids (a repeated input has a repeated hash id) are found at the end by
a DuckDB GROUP BY over the written file, under a memory limit and spilling to the work directory.

`finish(target, metadata)`: in the common case (one column layout throughout, no repeated
inputs or ids, no all-null column) the file gets its footer metadata and is renamed into place:
the rows are written once. Otherwise pass 2 streams the spool files into the part
(storage.parquet_io.write_parquet_batches_atomic), unifying column types across batches (a
column whose kinds conflict becomes JSON text), giving repeated inputs positional ids
(sha256(split, source_index, input)[:16]) and refusing a repeated source id with both lines.
"""
from __future__ import annotations

import hashlib
import json
import os
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .objects import ObjectPath, put_file
from .parquet_io import GroupedParquetWriter, fsync_dir, write_parquet_batches_atomic
from .readers import where
from .schemas import DATASET_SCHEMA
from .settings import get_setting


def hash_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def json_text(value) -> str:
    return json.dumps(value, default=str)


def extra_column(values: list) -> pa.Array:
    """An extra column as Arrow; values of mixed kinds become JSON text (strings stay as they are)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else (v if isinstance(v, str) else json_text(v)) for v in values], pa.string())


@dataclass
class Batch:
    """Mapped records: columns (as GenericMapper.columns gives them: example_id, input, target,
    choices, extra) and their location numbers (line numbers, or row numbers for Parquet)."""

    columns: dict
    where: list[int]

    @classmethod
    def of_rows(cls, rows: list[tuple[str, dict]]) -> "Batch":
        """From (location label, row dict) pairs of the per-record path."""
        names = list(dict.fromkeys(k for _, r in rows for k in r["extra"]))
        columns = {
            "example_id": pa.array([r["example_id"] for _, r in rows], pa.string()),
            "input": pa.array([r["input"] for _, r in rows], pa.string()),
            "target": pa.array([r["target"] for _, r in rows], pa.string()),
            "choices": pa.array([r["choices"] for _, r in rows], pa.list_(pa.string())),
            "extra": [(k, extra_column([r["extra"].get(k) for _, r in rows])) for k in names],
        }
        return cls(columns, [int(loc.removeprefix("row ")) for loc, _ in rows])


class SplitSpool:
    """Pass 1 of one split (see the module docstring)."""

    def __init__(self, work: Path, split: str, dataset: str, path: Path, where_prefix: str, row_group_size: int,
                 llm: list[tuple[str, str | None]] | None = None):
        self.work, self.split, self.dataset, self.path = work, split, dataset, path
        self.where_prefix, self.row_group_size, self.llm = where_prefix, row_group_size, llm
        self.files: list[Path] = []
        self.rows = 0
        self.hashed = bytearray()
        self.where = array("q")
        self._writer: GroupedParquetWriter | None = None

    def add(self, batch: Batch) -> None:
        table, hashed = self._table(batch)
        self.hashed.extend(hashed)
        self.where.extend(batch.where)
        if self._writer is None or not self._writer.schema.equals(table.schema):
            if self._writer is not None:
                self._writer.close()
            self.files.append(self.work / f"spool-{len(self.files):05d}.parquet")
            self._writer = GroupedParquetWriter(self.files[-1], table.schema, row_group_size=self.row_group_size)
        self._writer.write(table)
        self.rows += table.num_rows

    def _table(self, batch: Batch) -> tuple[pa.Table, list[bool] | bytes]:
        cols, n, start = batch.columns, len(batch.where), self.rows
        given = cols["example_id"]
        if given is not None and given.null_count == 0:  # every record has its id: no Python per row
            id_array, hashed = given, bytes(n)
        else:
            ids = given.to_pylist() if given is not None else [None] * n
            hashed = [i is None for i in ids]
            inputs = cols["input"].to_pylist()
            id_array = pa.array([hash_id(inputs[k]) if h else ids[k] for k, h in enumerate(hashed)], pa.string())
        arrays = [
            id_array,
            cols["input"],
            cols["target"] if cols["target"] is not None else pa.nulls(n, pa.string()),
            cols["choices"] if cols["choices"] is not None else pa.nulls(n, pa.list_(pa.string())),
            pa.array([self.split] * n, pa.string()),
            pa.array([self.dataset] * n, pa.string()),
        ]
        names = [f.name for f in DATASET_SCHEMA] + ["dataset"]
        for name, arr in cols["extra"]:
            arrays.append(arr)
            names.append(name)
        arrays.append(pa.array(range(start, start + n), pa.int64()))
        names.append("source_index")
        if self.llm is not None:
            chunk = self.llm[start:start + n]
            arrays += [pa.array([p[0] for p in chunk], pa.string()), pa.array([p[1] for p in chunk], pa.string())]
            names += ["llm_rationale", "llm_label"]
        arrays = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays]
        return pa.Table.from_arrays(arrays, names=names), hashed

    def close(self) -> None:
        """Abandon: close the open file (the work directory is removed by the caller)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def finish(self, target: Path, metadata: dict[str, str]) -> None:
        """Write the part to `target` (atomically) with `metadata` in its footer."""
        if self._writer is not None:
            self._writer.close(metadata, sync=True)
            self._writer = None
        repeated = self._repeated_ids()
        schema = pq.read_schema(self.files[-1])
        simple = len(self.files) == 1 and not repeated and not any(pa.types.is_null(f.type) for f in schema)
        if simple and isinstance(target, ObjectPath):  # object storage: one upload under the final key
            with open(self.files[0], "rb") as fh:
                put_file(fh, target)
            return
        if simple:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.files[0], target)
            fsync_dir(target.parent)
            return
        schema, as_text = self._final_schema()
        write_parquet_batches_atomic(self._tables(schema, as_text, repeated), target, schema,
                                     row_group_size=self.row_group_size, metadata=metadata)

    def table(self) -> pa.Table:
        """The whole split in memory (storage.ingest.prepare, for small sources)."""
        self.close()
        schema, as_text = self._final_schema()
        tables = list(self._tables(schema, as_text, self._repeated_ids()))
        return pa.concat_tables(tables) if tables else schema.empty_table()

    # -------------------------------------------------------------- pass 2
    def _repeated_ids(self) -> set[str]:
        """example_ids that occur more than once (DuckDB, bounded memory, spilling to the work directory)."""
        if not self.files:
            return set()
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET memory_limit = ?", [get_setting("ingest_duckdb_memory")])
            con.execute("SET temp_directory = ?", [str(self.work / "duckdb.tmp")])
            con.execute("SET threads = 2")
            con.execute("SET enable_progress_bar = false")
            files = [str(f) for f in self.files]
            rows = con.execute("SELECT example_id FROM read_parquet(?, union_by_name=true) GROUP BY example_id "
                               "HAVING count(*) > 1", [files]).fetchall()
        finally:
            con.close()
        return {r[0] for r in rows}

    def _final_schema(self) -> tuple[pa.Schema, set[str]]:
        kinds: dict[str, list[pa.DataType]] = {}
        for f in self.files:
            for fld in pq.read_schema(f):
                kinds.setdefault(fld.name, []).append(fld.type)
        fields, as_text = [], set()
        for name, types in kinds.items():
            real = [t for t in types if not pa.types.is_null(t)]
            try:
                unified = (pa.unify_schemas([pa.schema([(name, t)]) for t in real], promote_options="permissive")[0].type
                           if real else pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                unified = pa.string()
                as_text.add(name)
            fields.append(pa.field(name, unified))
        return pa.schema(fields), as_text

    def _tables(self, schema: pa.Schema, as_text: set[str], repeated: set[str]) -> Iterator[pa.Table]:
        seen: dict[str, int] = {}
        for f in self.files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=self.row_group_size):
                table = pa.Table.from_batches([batch])
                if repeated:
                    table = self._fix_ids(table, repeated, seen)
                n = table.num_rows
                columns = []
                for fld in schema:
                    if fld.name not in table.column_names:
                        columns.append(pa.nulls(n, fld.type))
                    elif fld.name in as_text and not pa.types.is_string(table.column(fld.name).type):
                        columns.append(pa.array([None if v is None else (v if isinstance(v, str) else json_text(v))
                                                 for v in table.column(fld.name).to_pylist()], pa.string()))
                    else:
                        columns.append(table.column(fld.name).cast(fld.type))
                yield pa.Table.from_arrays(columns, schema=schema)

    def _fix_ids(self, table: pa.Table, repeated: set[str], seen: dict[str, int]) -> pa.Table:
        """Positional ids for repeated inputs; a repeated source id is refused, naming both lines."""
        ids = table.column("example_id").to_pylist()
        inputs = table.column("input").to_pylist()
        index = table.column("source_index").to_pylist()
        for i, eid in enumerate(ids):
            if eid not in repeated:
                continue
            row = index[i]
            if self.hashed[row]:
                ids[i] = hash_id(self.split, str(row), inputs[i])
            else:
                if eid in seen:
                    raise ValueError(
                        f"{self._where(row)}: example id {eid!r} already used at {self._where(seen[eid])}; ids must be "
                        "unique within a split: pass --id-field naming a unique field, or omit the id field to hash "
                        "the inputs")
                seen[eid] = row
        return table.set_column(0, "example_id", pa.array(ids, pa.string()))

    def _where(self, row: int) -> str:
        return where(self.path, f"{self.where_prefix}{self.where[row]}")

