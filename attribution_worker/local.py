"""The local executor: a JobSpec run in this process (no Ray), shards committed through storage/.

    from attribution_worker.local import run_local
    summary = run_local(catalog, JobSpec(dataset="cqa", teacher="google/flan-t5-small"))

The same spec as `salient attribute` (spec.JobSpec), started by the same `jobs.prepare_job`: the
same job id function (`job-<dataset>-<hash>`), the same dataset-version pinning (a resume over a
re-ingested dataset is refused, naming the fix), the same shard function as the Ray actors
(shard.attribute_shard). Rows are streamed: one shard is read from Parquet, attributed, written
and committed before the next is read, so memory does not grow with the dataset. Running the
same spec again resumes it: committed shards are skipped, never duplicated (storage.write_shard).
`salient attribute-local` is the command-line entry.
"""
from __future__ import annotations

import time
from typing import Callable

from storage import Catalog, write_shard

from .rows import DatasetRows, dataset_format  # noqa: F401  (re-exported)
from .shard import attribute_shard
from .spec import JobSpec


def dataset_table(catalog: Catalog, dataset: str, split: str | None = None, limit: int | None = None):
    """The active rows of `dataset` (optionally one split) as one Arrow table, in part order (small data only)."""
    rows = DatasetRows.open(catalog, dataset, split, limit)
    return rows.slice(0, rows.num_rows)


def dataset_rows(catalog: Catalog, dataset: str, split: str | None = None, limit: int | None = None) -> list[dict]:
    """The active rows of `dataset` (optionally one split), in part order, as dicts (small data only)."""
    return dataset_table(catalog, dataset, split, limit).to_pylist()


def run_local(catalog: Catalog, spec: JobSpec, *, job_id: str | None = None, engine=None,
              progress: Callable[[dict], None] | None = None) -> dict:
    """Run (or resume) `spec` in this process; returns a summary dict.

    engine: an AttributionEngine to reuse (tests, benchmarks); None loads the spec's teacher once.
    progress(event) after every committed shard: job_id, shard, shards, path, rows, error_rows.
    """
    from .engine import AttributionConfig, AttributionEngine
    from .jobs import engine_config, prepare_job

    job, spec, table = prepare_job(catalog, spec, job_id)
    job_id, n_shards = job["job_id"], job["shards_total"]
    done = catalog.committed_shards(job_id)
    base = {"job_id": job_id, "rows": table.num_rows, "shards": n_shards, "skipped_shards": len(done)}
    if job["status"] == "succeeded" and len(done) >= n_shards:  # re-running a finished job is a no-op
        return {**base, "status": "succeeded", "attributed_now": 0, "error_rows_now": 0, "seconds": 0.0,
                "examples_per_s": None}
    catalog.mark_running(job_id)
    started = time.perf_counter()
    attributed = errors = 0
    todo = [i for i in range(n_shards) if i not in done]
    try:
        for index, rows in table.shards(spec.shard_size, todo):
            engine = engine or AttributionEngine(AttributionConfig(**engine_config(catalog, spec)))
            shard = attribute_shard(engine, rows, dataset=spec.dataset, split=spec.split, job_id=job_id,
                                    shard_index=index)
            info = write_shard(catalog, shard, dataset=spec.dataset, job_id=job_id, index=index)
            attributed += rows.num_rows
            errors += info["error_rows"]
            if progress:
                progress({"job_id": job_id, "shard": index, "shards": n_shards, **info})
    except KeyboardInterrupt:
        catalog.mark_failed(job_id, f"interrupted; resume with `salient attribute-local --resume {job_id}`")
        raise
    except BaseException as exc:
        catalog.mark_failed(job_id, f"{type(exc).__name__}: {exc}"[:1000])
        raise
    catalog.mark_succeeded(job_id)
    seconds = time.perf_counter() - started
    return {**base, "status": "succeeded", "attributed_now": attributed, "error_rows_now": errors,
            "seconds": round(seconds, 2),
            "examples_per_s": round(attributed / seconds, 2) if attributed and seconds > 0 else None}
