"""Arrow schemas: the data contract every other package writes and reads.

Dataset rows (one per input example) and rationale rows (one per attributed example).
Rationale schema history:
  v1  DESIGN.md "Rationale row".
  v2  adds nullable faithfulness columns (ERASER, DeYoung et al. 2020):
      teacher_logprob, comprehensiveness, sufficiency, gold_overlap.
Readers accept every version (DuckDB reads shards with union_by_name; missing columns are NULL).
"""
from __future__ import annotations

import pyarrow as pa

DATASET_SCHEMA_VERSION = 1
RATIONALE_SCHEMA_VERSION = 2

# Columns every ingested dataset row has; adapters may keep extra (string-typed or native) columns.
DATASET_SCHEMA = pa.schema(
    [
        pa.field("example_id", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),
        pa.field("target", pa.string()),
        pa.field("choices", pa.list_(pa.string())),
        pa.field("split", pa.string(), nullable=False),
    ]
)
DATASET_COLUMNS = tuple(DATASET_SCHEMA.names)

SPAN_TYPE = pa.struct([pa.field("start", pa.int32()), pa.field("end", pa.int32())])

RATIONALE_SCHEMA_V1 = pa.schema(
    [
        pa.field("example_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("shard_index", pa.int32(), nullable=False),
        pa.field("input_text", pa.string(), nullable=False),
        pa.field("target_text", pa.string()),
        pa.field("teacher_model", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("teacher_output", pa.string()),
        pa.field("teacher_correct", pa.bool_()),
        pa.field("tokens", pa.list_(pa.string())),
        pa.field("spans", pa.list_(SPAN_TYPE)),
        pa.field("scores", pa.list_(pa.float32())),
        pa.field("rationale", pa.list_(pa.string())),
        pa.field("rationale_text", pa.string()),
        pa.field("error", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

RATIONALE_SCHEMA = pa.schema(
    list(RATIONALE_SCHEMA_V1)
    + [
        # log p(teacher_output | input_text), summed over answer tokens.
        pa.field("teacher_logprob", pa.float32()),
        # ERASER comprehensiveness: logp(full) - logp(input without rationale words). Higher = more faithful.
        pa.field("comprehensiveness", pa.float32()),
        # ERASER sufficiency: logp(full) - logp(rationale words only). Lower = more sufficient.
        pa.field("sufficiency", pa.float32()),
        # Whether a rationale word occurs in the gold answer text, when that text appears in the input.
        pa.field("gold_overlap", pa.bool_()),
    ]
).with_metadata({b"salient.schema": b"rationale", b"salient.schema_version": str(RATIONALE_SCHEMA_VERSION).encode()})

RATIONALE_COLUMNS = tuple(RATIONALE_SCHEMA.names)
# Columns the engine fills; the job runner adds provenance (dataset, split, job_id, shard_index, created_at).
PROVENANCE_COLUMNS = ("dataset", "split", "job_id", "shard_index", "created_at")


def rationale_table(rows: list[dict], **provenance) -> pa.Table:
    """Build a schema-conforming rationale table from engine row dicts plus provenance.

    rows: dicts keyed by RATIONALE_COLUMNS (provenance keys may be omitted and given as kwargs:
    dataset=, split=, job_id=, shard_index=, created_at=). Missing nullable columns become NULL.
    Raises ValueError naming the column when a required value is missing.
    """
    import datetime as _dt

    provenance.setdefault("created_at", _dt.datetime.now(_dt.timezone.utc))
    columns: dict[str, list] = {name: [] for name in RATIONALE_COLUMNS}
    for i, row in enumerate(rows):
        for field in RATIONALE_SCHEMA:
            value = row.get(field.name, provenance.get(field.name))
            if value is None and not field.nullable:
                raise ValueError(f"rationale row {i}: required column {field.name!r} is missing")
            columns[field.name].append(value)
    return pa.table(columns, schema=RATIONALE_SCHEMA)


def empty_rationale_table() -> pa.Table:
    return RATIONALE_SCHEMA.empty_table()
