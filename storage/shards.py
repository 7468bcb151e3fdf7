"""Writing a job's shard: the file first (atomic), then its catalog row.

A crash between the two leaves a complete file that is not registered; the job re-runs that
shard and overwrites the same path (deterministic name), so rows are never duplicated.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .catalog import Catalog, shard_metadata
from .parquet_io import write_parquet_atomic
from .schemas import RATIONALE_SCHEMA


def conform(table: pa.Table) -> pa.Table:
    """`table` in RATIONALE_SCHEMA's column order and types; nullable columns it lacks (a writer of an
    older schema version) are added as nulls. A missing required column raises naming it."""
    columns = []
    for field in RATIONALE_SCHEMA:
        if field.name in table.column_names:
            columns.append(table.column(field.name))
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise ValueError(f"shard table lacks the required column {field.name!r} of the rationale schema "
                             f"(storage.schemas.RATIONALE_SCHEMA)")
    return pa.Table.from_arrays(columns, names=RATIONALE_SCHEMA.names).cast(RATIONALE_SCHEMA)


def write_shard(catalog: Catalog, table: pa.Table, *, dataset: str, job_id: str, index: int) -> dict:
    """Write `table` (RATIONALE_SCHEMA) as shard `index` of `job_id` and commit it.

    Returns {"path", "rows", "error_rows", "bytes", "committed"}; committed is False when the
    shard had already been committed (the file is then left as it was).
    """
    if table.schema.remove_metadata() != RATIONALE_SCHEMA.remove_metadata():
        table = conform(table)
    if index in catalog.committed_shards(job_id):
        path = catalog.store.shard_path(dataset, job_id, index)
        return {"path": catalog.store.relative(path), "rows": table.num_rows, "error_rows": 0, "bytes": 0, "committed": False}
    rows = table.num_rows
    error_rows = rows - pc.sum(pc.is_null(table.column("error"))).as_py() if rows else 0
    path = catalog.store.shard_path(dataset, job_id, index)
    size = write_parquet_atomic(
        table, path,
        metadata=shard_metadata(job_id=job_id, shard_index=index, rows=rows, error_rows=error_rows, dataset=dataset),
    )
    rel = catalog.store.relative(path)
    committed = catalog.commit_shard(job_id, index=index, path=rel, rows=rows, error_rows=error_rows, bytes_=size)
    return {"path": rel, "rows": rows, "error_rows": error_rows, "bytes": size, "committed": committed}
