"""Attribute a whole dataset in this process and commit shards through storage/ (no Ray).

    from attribution_worker.local import attribute_dataset
    summary = attribute_dataset(catalog, "cqa", AttributionConfig(teacher="google/flan-t5-small"))

The job id is derived from (dataset, split, config), so running the same thing again resumes it:
committed shards are skipped, never duplicated (storage.write_shard). The config is saved in the
job spec (job.json beside the shards). `salient attribute-local` is the command-line entry.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Callable

import pyarrow.parquet as pq

from storage import Catalog, rationale_table, write_shard

from .engine import AttributionConfig, AttributionEngine
from .templates import template_for_format

EXAMPLE_COLUMNS = ("example_id", "input", "target", "choices", "split")


def dataset_table(catalog: Catalog, dataset: str, split: str | None = None, limit: int | None = None):
    """The active rows of `dataset` (optionally one split) as one Arrow table, in part order."""
    import pyarrow as pa

    parts = catalog.dataset_parts(dataset, split)
    if not parts:
        known = sorted({d["name"] for d in catalog.datasets()})
        raise ValueError(f"no dataset {dataset!r}{f' split {split!r}' if split else ''} in the catalog "
                         f"(known: {', '.join(known) or 'none'}); ingest it first with `salient datasets add`")
    tables, n = [], 0
    for part in parts:
        t = pq.read_table(catalog.store.absolute(part))
        tables.append(t.select([c for c in EXAMPLE_COLUMNS if c in t.column_names]))
        n += t.num_rows
        if limit is not None and n >= limit:
            break
    table = pa.concat_tables(tables, promote_options="default")
    return table.slice(0, limit) if limit is not None else table


def dataset_rows(catalog: Catalog, dataset: str, split: str | None = None, limit: int | None = None) -> list[dict]:
    """The active rows of `dataset` (optionally one split), in part order, as dicts."""
    return dataset_table(catalog, dataset, split, limit).to_pylist()


def dataset_format(catalog: Catalog, dataset: str) -> str | None:
    rows = catalog.query("SELECT format FROM datasets WHERE name = ? AND active ORDER BY created_at DESC", [dataset])
    return rows[0]["format"] if rows else None


def job_id_for(dataset: str, split: str | None, config: AttributionConfig, limit: int | None) -> str:
    key = json.dumps({"dataset": dataset, "split": split, "limit": limit, "config": config.to_dict()}, sort_keys=True)
    return f"local-{dataset}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def attribute_dataset(
    catalog: Catalog, dataset: str, config: AttributionConfig, *, split: str | None = None, shard_size: int = 1000,
    limit: int | None = None, job_id: str | None = None, engine: AttributionEngine | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Attribute every row of `dataset` and commit one shard per `shard_size` rows; returns a summary."""
    if shard_size < 1:
        raise ValueError("--shard-size: must be >= 1")
    rows = dataset_rows(catalog, dataset, split, limit)
    job_id = job_id or job_id_for(dataset, split, config, limit)
    n_shards = (len(rows) + shard_size - 1) // shard_size
    job = catalog.create_job(job_id, dataset=dataset, split=split, spec={"kind": "attribute-local", **config.to_dict()},
                             total_rows=len(rows), shards_total=n_shards)
    done = catalog.committed_shards(job_id)
    if job["status"] == "succeeded" and len(done) >= n_shards:  # re-running a finished job is a no-op
        return {"job_id": job_id, "rows": len(rows), "attributed_now": 0, "error_rows_now": 0, "shards": n_shards,
                "skipped_shards": len(done), "seconds": 0.0, "examples_per_s": None}
    catalog.mark_running(job_id)
    started = time.perf_counter()
    attributed = errors = 0
    try:
        for index in range(n_shards):
            if index in done:
                continue
            engine = engine or AttributionEngine(config)
            chunk = rows[index * shard_size: (index + 1) * shard_size]
            out = engine.attribute(chunk)
            for row, ex in zip(out, chunk):
                row["split"] = ex.get("split") or split or "train"
            table = rationale_table(out, dataset=dataset, split=split or "train", job_id=job_id, shard_index=index)
            info = write_shard(catalog, table, dataset=dataset, job_id=job_id, index=index)
            attributed += len(chunk)
            errors += info["error_rows"]
            if progress:
                progress({"job_id": job_id, "shard": index, "shards": n_shards, **info})
    except BaseException as exc:
        catalog.mark_failed(job_id, f"{type(exc).__name__}: {exc}"[:500])
        raise
    catalog.mark_succeeded(job_id)
    seconds = time.perf_counter() - started
    return {"job_id": job_id, "rows": len(rows), "attributed_now": attributed, "error_rows_now": errors,
            "shards": n_shards, "skipped_shards": len(done), "seconds": round(seconds, 2),
            "examples_per_s": round(attributed / seconds, 2) if attributed and seconds > 0 else None}


def config_for_dataset(catalog: Catalog, dataset: str, **fields) -> AttributionConfig:
    """An AttributionConfig whose template follows the dataset's ingest format unless one is given."""
    if not fields.get("template"):
        fields["template"] = template_for_format(dataset_format(catalog, dataset))
    return AttributionConfig(**fields)
