"""One shard's work, the same in a Ray actor and in the local executor: dataset rows -> rationale table.

    table = attribute_shard(engine, rows, dataset="cqa", split=None, job_id="job-cqa-...", shard_index=3)

rows: dataset rows (example_id, input, target, choices, split) as dicts or an Arrow table. Returns
a RATIONALE_SCHEMA pyarrow.Table with provenance filled in (each row keeps its own split; rows
without one take `split`, else "train"). Never touches the catalog: the caller writes and commits.
"""
from __future__ import annotations

import pyarrow as pa

from storage import rationale_table


def attribute_shard(engine, rows, *, dataset: str, split: str | None, job_id: str, shard_index: int) -> pa.Table:
    if isinstance(rows, pa.Table):
        rows = rows.to_pylist()
    out = engine.attribute(rows)
    for row, ex in zip(out, rows):
        row["split"] = ex.get("split") or split or "train"
    return rationale_table(out, dataset=dataset, split=split or "train", job_id=job_id, shard_index=shard_index)
