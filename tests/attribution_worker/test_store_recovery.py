"""A damaged file never takes the store down (issue 8, item 2; docs/storage.md "Recovery runbook").

Each case damages one real file of a store holding a real attribution job (tiny T5 teacher, local
Ray): a truncated shard, a deleted shard, a truncated dataset part, a garbage catalog.duckdb.
Then, as a user would: queries over the healthy data work and queries needing the damaged file
fail naming it; `salient catalog check` lists it (exit 1); `salient catalog rebuild` skips it
and says what to do; `salient attribute --resume JOB` ends with exactly one row per input.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.cli import main
from storage import DATASET_SCHEMA, Catalog, CatalogCorrupt, Store, write_parquet_atomic
from storage.ingest import part_metadata
from storage.sql import run_sql
from test_jobs import make_rows, spec_for

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def teacher(tiny_teachers):
    return tiny_teachers["seq2seq"]


@pytest.fixture
def attributed(ray_local, store, teacher, make_examples):
    """A store with datasets toy (30 rows) and other (10 rows) and a finished 3-shard job over toy."""
    from attribution_worker.jobs import run_job

    catalog = Catalog.open(store)
    rows = make_rows(30, make_examples)
    register(catalog, rows)
    register(catalog, make_rows(10, make_examples), name="other")
    summary = run_job(catalog, spec_for(teacher, shard_size=10, actors=1))
    assert summary["status"] == "succeeded" and summary["shards"] == 3
    return catalog, summary["job_id"], rows


def register(catalog: Catalog, rows: list[dict], name: str = "toy") -> None:
    """A dataset part as ingest writes it: its footer carries what `catalog rebuild` needs."""
    import datetime as dt

    path = catalog.store.dataset_part(name, "v1", 0)
    meta = part_metadata(name=name, version="v1", split="test", rows=len(rows), format="jsonl", source="test",
                         content_hash="h-" + name, created_at=dt.datetime.now(dt.timezone.utc))
    table = pa.Table.from_pylist(rows, schema=DATASET_SCHEMA)
    table = table.append_column("dataset", pa.array([name] * len(rows), pa.string()))  # as ingest writes it
    write_parquet_atomic(table, path, metadata=meta)
    catalog.register_dataset_part(name=name, version="v1", split="test", path=catalog.store.relative(path),
                                  rows=len(rows), format="jsonl", source="test", content_hash="h-" + name)


def _cli(store: Store, capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--store", str(store.root), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _one_row_per_input(catalog: Catalog, job_id: str, rows: list[dict]) -> None:
    got = catalog.query("SELECT example_id FROM rationales WHERE job_id = ? ORDER BY example_id", [job_id])
    assert [r["example_id"] for r in got] == sorted(r["example_id"] for r in rows)


def _resume_to_one_row_per_input(store, capsys, catalog, job_id, rows) -> dict:
    code, out, err = _cli(store, capsys, "attribute", "--resume", job_id, "--wait")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert catalog.get_job(job_id)["status"] == "succeeded"
    _one_row_per_input(catalog, job_id, rows)
    assert _cli(store, capsys, "catalog", "check")[0] == 0
    return summary


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_a_damaged_shard(attributed, store, capsys, damage):
    catalog, job_id, rows = attributed
    shard = store.shard_path("toy", job_id, 1)
    rel = store.relative(shard)
    _truncate(shard) if damage == "truncated" else shard.unlink()

    # queries over the healthy data work; one that needs the damaged shard fails naming it and the fix
    assert run_sql(catalog, "SELECT count(*) FROM rationales WHERE shard_index <> 1").rows == [(20,)]
    assert run_sql(catalog, "SELECT count(*) FROM examples").rows == [(40,)]
    assert catalog.query("SELECT count(*) AS n FROM rationales WHERE dataset = 'none'")[0]["n"] == 0
    with pytest.raises(duckdb.Error, match=rf"shard {shard} is {'unreadable' if damage == 'truncated' else 'missing'}"
                                           r".*salient catalog rebuild --quarantine"):
        run_sql(catalog, "SELECT count(*) FROM rationales")
    code, _, err = _cli(store, capsys, "sql", "SELECT example_id FROM rationale_tokens")
    assert code == 2 and str(shard) in err
    for argv in (("jobs", "ls"), ("jobs", "show", job_id), ("datasets", "ls"), ("catalog", "show")):
        assert _cli(store, capsys, *argv)[0] == 0

    code, out, _ = _cli(store, capsys, "catalog", "check")
    assert code == 1 and rel in out and ("unreadable" if damage == "truncated" else "missing") in out

    code, out, _ = _cli(store, capsys, "catalog", "rebuild", "--quarantine")
    assert code == 0 and "3 datasets" not in out and "2 datasets, 1 jobs, 2 shards" in out
    assert f"job {job_id} lost shard(s) 1" in out
    if damage == "truncated":
        assert f"quarantined {rel} -> quarantine/{rel}" in out
        assert (store.root / "quarantine" / rel).exists() and not shard.exists()
    job = catalog.get_job(job_id)
    assert job["status"] == "failed" and "shard(s) 1 lost" in job["message"] and job["shards_done"] == 2
    assert run_sql(catalog, "SELECT count(*) FROM rationales").rows == [(20,)]  # the views are whole again

    summary = _resume_to_one_row_per_input(store, capsys, catalog, job_id, rows)
    assert summary["skipped_shards"] == 2 and summary["committed_now"] == 1  # exactly the lost shard


def test_a_truncated_dataset_part(attributed, store, capsys, make_examples):
    catalog, job_id, rows = attributed
    part = store.dataset_part("other", "v1", 0)
    rel = store.relative(part)
    _truncate(part)

    assert run_sql(catalog, "SELECT count(*) FROM examples WHERE dataset = 'toy'").rows == [(30,)]
    assert run_sql(catalog, "SELECT count(*) FROM rationales").rows == [(30,)]
    with pytest.raises(duckdb.Error, match=rf"dataset part {part} is unreadable.*salient datasets add"):
        run_sql(catalog, "SELECT count(*) FROM examples")
    code, out, _ = _cli(store, capsys, "catalog", "check")
    assert code == 1 and rel in out and "unreadable" in out

    code, out, _ = _cli(store, capsys, "catalog", "rebuild")  # without --quarantine: skipped, listed, left in place
    assert code == 0 and "1 datasets, 1 jobs, 3 shards" in out and rel in out and part.exists()
    assert catalog.get_job(job_id)["status"] == "succeeded"  # its files are intact: its state is kept
    assert run_sql(catalog, "SELECT count(*) FROM examples").rows == [(30,)]
    assert _cli(store, capsys, "catalog", "check")[0] == 1  # the damaged part is still there, unregistered

    register(catalog, make_rows(10, make_examples), name="other")  # re-ingested: the file is rewritten whole
    assert run_sql(catalog, "SELECT count(*) FROM examples").rows == [(40,)]
    summary = _resume_to_one_row_per_input(store, capsys, catalog, job_id, rows)
    assert summary["committed_now"] == 0  # nothing was lost


def test_a_garbage_catalog_and_a_stray_parquet_file(attributed, store, capsys):
    catalog, job_id, rows = attributed
    store.catalog_path.write_bytes(b"this is not a database " * 1000)
    stray = store.datasets_dir / "toy" / "v1" / "part-00001.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), stray)

    with pytest.raises(CatalogCorrupt, match="cannot be opened as a DuckDB catalog.*salient catalog rebuild"):
        catalog.jobs()
    code, _, err = _cli(store, capsys, "jobs", "ls")
    assert code == 1 and "salient catalog rebuild" in err
    code, out, _ = _cli(store, capsys, "catalog", "check")
    assert code == 1 and "catalog.duckdb" in out and store.relative(stray) in out

    code, out, _ = _cli(store, capsys, "catalog", "rebuild")
    assert code == 0
    moved = [p for p in store.root.iterdir() if p.name.startswith("catalog.duckdb.corrupt-")]
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b"this is not a database")  # kept, not deleted
    assert f"moved aside to {moved[0].name}" in out
    assert "2 datasets, 1 jobs, 3 shards" in out  # everything the files support
    assert store.relative(stray) in out and "not a salient file" in out and "salient.split" in out

    job = catalog.get_job(job_id)
    assert job["status"] == "succeeded" and job["shards_done"] == 3
    assert run_sql(catalog, "SELECT count(*) FROM examples WHERE dataset = 'toy'").rows == [(30,)]
    stray.unlink()
    summary = _resume_to_one_row_per_input(store, capsys, catalog, job_id, rows)
    assert summary["committed_now"] == 0
