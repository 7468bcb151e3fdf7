"""Arrow schemas: the data contract every other package writes and reads.

Dataset rows (one per input example) and rationale rows (one per attributed example).
Rationale schema history (docs/storage.md "Rationale schema versions" has the migration story):
  v1  DESIGN.md "Rationale row".
  v2  adds nullable faithfulness columns: teacher_logprob, comprehensiveness, sufficiency,
      gold_overlap (comprehensiveness / sufficiency were log-probability differences).
  v3  comprehensiveness / sufficiency are ERASER's probability differences (DeYoung et al. 2020);
      the log-probability differences move to comprehensiveness_logprob / sufficiency_logprob;
      adds teacher_prob, AOPC (aopc_comprehensiveness / aopc_sufficiency and their per-size
      curves), ig_completeness_error / ig_steps, and the teacher's distribution over a closed
      answer set (answer_choices / answer_probs) for distillation losses.
Readers accept every version (DuckDB reads shards with union_by_name; missing columns are NULL).
A v2 row is recognisable: comprehensiveness IS NOT NULL AND comprehensiveness_logprob IS NULL.
"""
from __future__ import annotations

import pyarrow as pa

DATASET_SCHEMA_VERSION = 1
RATIONALE_SCHEMA_VERSION = 3

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

RATIONALE_SCHEMA_V2 = pa.schema(
    list(RATIONALE_SCHEMA_V1)
    + [
        pa.field("teacher_logprob", pa.float32()),
        pa.field("comprehensiveness", pa.float32()),  # v2: log-probability difference (v3: probability)
        pa.field("sufficiency", pa.float32()),        # v2: log-probability difference (v3: probability)
        pa.field("gold_overlap", pa.bool_()),
    ]
)

RATIONALE_SCHEMA = pa.schema(
    list(RATIONALE_SCHEMA_V2)
    + [
        # p(teacher_output | input_text) = exp(teacher_logprob).
        pa.field("teacher_prob", pa.float32()),
        # (comprehensiveness, sufficiency above are ERASER's, v3:)
        #   comprehensiveness = p(a | x) - p(a | x without the rationale words). Higher = more faithful.
        #   sufficiency       = p(a | x) - p(a | rationale words only).          Lower = more sufficient.
        # The same differences of log p (what v2 stored under the names above).
        pa.field("comprehensiveness_logprob", pa.float32()),
        pa.field("sufficiency_logprob", pa.float32()),
        # ERASER AOPC: the mean over rationale sizes of 1, 5, 10, 20, 50% of the row's words (at least
        # one word each) of the probability comprehensiveness / sufficiency of the top-scoring words.
        pa.field("aopc_comprehensiveness", pa.float32()),
        pa.field("aopc_sufficiency", pa.float32()),
        # The per-size values behind the AOPC, in the order of attribution_worker.constants.AOPC_FRACTIONS.
        pa.field("comprehensiveness_curve", pa.list_(pa.float32())),
        pa.field("sufficiency_curve", pa.list_(pa.float32())),
        # Integrated gradients: |sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)|,
        # f = log p(answer); and the steps that produced the stored scores. NULL for other methods.
        pa.field("ig_completeness_error", pa.float32()),
        pa.field("ig_steps", pa.int32()),
        # The teacher's distribution over a closed answer set: the classifier's labels (id order) or
        # the row's choices (choice-scoring seq2seq / causal teachers, multiple-choice teachers);
        # answer_probs = softmax of the teacher's scores over them (logits, or each choice's summed
        # log p). NULL when the answer is free generation.
        pa.field("answer_choices", pa.list_(pa.string())),
        pa.field("answer_probs", pa.list_(pa.float32())),
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
