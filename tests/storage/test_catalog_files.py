"""The files are the truth: killed writers leave nothing visible, `rebuild` recreates the catalog, one writer."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import time

import pytest

from storage import Catalog, CatalogLocked, rationale_table, write_shard
from storage.ingest import ingest
from storage.parquet_io import sweep_tmp
from storage.sql import run_sql

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rows(n: int, offset: int = 0) -> list[dict]:
    words = ["cat", "sat", "on", "the", "mat", "today"]
    return [{
        "example_id": f"ex{offset + i}", "input_text": " ".join(words), "target_text": "mat",
        "teacher_model": "tiny", "method": "saliency", "teacher_output": "mat", "teacher_correct": True,
        "tokens": words, "spans": [{"start": 0, "end": 3}] * len(words), "scores": [0.1] * len(words),
        "rationale": words[(offset + i) % 3:][:2], "rationale_text": " ".join(words[(offset + i) % 3:][:2]),
        "error": None if i % 5 else "too long",
    } for i in range(n)]


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_shard_writer_killed_before_rename_leaves_no_visible_file(catalog):
    job = catalog.create_job("job1", dataset="toy", split="test", spec={}, total_rows=20, shards_total=2)
    table = rationale_table(_rows(10), dataset="toy", split="test", job_id=job["job_id"], shard_index=0)
    write_shard(catalog, table, dataset="toy", job_id="job1", index=0)
    # A second process writes shard 1 and is SIGKILLed at the moment it would rename the temp file.
    code = f"""
        import os, signal, sys
        sys.path.insert(0, {REPO!r})
        import pyarrow as pa
        from storage import parquet_io
        os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        parquet_io.write_parquet_atomic(pa.table({{"a": list(range(1000))}}), {str(catalog.store.shard_path("toy", "job1", 1))!r})
    """
    proc = subprocess.run(_python(code), capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    job_dir = catalog.store.job_dir("toy", "job1")
    assert sorted(p.name for p in job_dir.glob("*.parquet")) == ["shard-00000.parquet"]
    leftovers = list(job_dir.glob(".*.tmp"))
    assert len(leftovers) == 1  # the partial file exists, but no reader globs it
    assert run_sql(catalog, "SELECT count(*) FROM rationales").rows == [(10,)]
    assert run_sql(catalog, f"SELECT count(*) FROM read_parquet('{job_dir}/*.parquet')").rows == [(10,)]
    assert sweep_tmp(catalog.store.root) == leftovers and not list(job_dir.glob(".*.tmp"))


def test_rebuild_from_files_gives_the_same_query_results(store, shared_datasets):
    queries = [
        "SELECT dataset, split, count(*), count(DISTINCT example_id), count(llm_rationale) FROM examples GROUP BY ALL ORDER BY ALL",
        "SELECT name, version, split, path, rows, format, source, content_hash, active, created_at FROM datasets ORDER BY ALL",
        "SELECT job_id, split, count(*), count(error) FROM rationales GROUP BY ALL ORDER BY ALL",
        "SELECT token, count(*) AS n FROM rationale_tokens GROUP BY token ORDER BY n DESC, token LIMIT 50",
        "SELECT r.job_id, e.target, count(*) FROM rationales r JOIN examples e USING (example_id) GROUP BY ALL ORDER BY ALL",
        'SELECT job_id, "index", path, rows, error_rows, bytes FROM shards ORDER BY ALL',
        "SELECT job_id, dataset, split, status, total_rows, done_rows, error_rows, shards_done, shards_total FROM jobs ORDER BY ALL",
    ]
    with Catalog.open(store) as cat:
        ingest(cat, "svamp", shared_datasets / "svamp")
        ingest(cat, "anli1", shared_datasets / "anli1")
        ids = [r["example_id"] for r in cat.query("SELECT example_id FROM examples WHERE dataset = 'svamp' ORDER BY source_index")]
        cat.create_job("j-svamp", dataset="svamp", split="train", spec={"k": 8}, total_rows=30, shards_total=3)
        cat.mark_running("j-svamp")
        for index in range(3):
            rows = _rows(10, offset=index * 10)
            for i, row in enumerate(rows):
                row["example_id"] = ids[index * 10 + i]
            table = rationale_table(rows, dataset="svamp", split="train", job_id="j-svamp", shard_index=index,
                                    created_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
            write_shard(cat, table, dataset="svamp", job_id="j-svamp", index=index)
        cat.mark_succeeded("j-svamp")
        before = [run_sql(cat, q).rows for q in queries]
    assert before[2] == [("j-svamp", "train", 30, 6)] and len(before[4]) > 0
    store.catalog_path.unlink()
    for wal in store.root.glob("catalog.duckdb*"):
        wal.unlink()
    with Catalog.open(store) as cat:
        assert cat.query("SELECT count(*) AS n FROM datasets")[0]["n"] == 0
        counts = cat.rebuild()
        assert counts == {"datasets": 4, "jobs": 1, "shards": 3, "runs": 0}
        after = [run_sql(cat, q).rows for q in queries]
    assert after == before


def test_an_open_catalog_holds_no_lock_so_two_processes_write_and_read(store):
    """A process keeping a Catalog object (a driver, a trainer) blocks nobody: each operation opens briefly."""
    code = f"""
        import sys, time
        sys.path.insert(0, {REPO!r})
        from storage import Catalog, Store
        cat = Catalog.open(Store.open({str(store.root)!r}))
        cat.create_job("held", dataset="toy", split=None, spec={{}}, total_rows=1, shards_total=1)
        print("open", flush=True)
        sys.stdin.readline()
        print(cat.get_job("mine")["status"], flush=True)
    """
    holder = subprocess.Popen(_python(code), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        cat = Catalog.open(store)
        assert cat.get_job("held")["status"] == "queued"
        cat.create_job("mine", dataset="toy", split=None, spec={}, total_rows=1, shards_total=1)
        cat.mark_running("mine")
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "running"  # it sees this process's write
    finally:
        holder.kill()
        holder.wait()


def test_a_foreign_lock_holder_is_waited_for_then_named(store, monkeypatch):
    """Something that keeps catalog.duckdb open read-write (not salient) gets a bounded wait, then CatalogLocked
    naming its PID and the fix; a holder that lets go within the wait is simply waited for."""
    Catalog.open(store).create_job("j", dataset="toy", split=None, spec={}, total_rows=1, shards_total=1)
    code = f"""
        import sys, time, duckdb
        con = duckdb.connect({str(store.catalog_path)!r})
        print("open", flush=True)
        time.sleep(float(sys.argv[1]))
        con.close()
        print("closed", flush=True)
        time.sleep(60)
    """
    monkeypatch.setenv("SALIENT_CATALOG_LOCK_TIMEOUT_S", "1.5")
    holder = subprocess.Popen(_python(code) + ["60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        t0 = time.monotonic()
        with pytest.raises(CatalogLocked, match=rf"locked by process {holder.pid} for catalog_lock_timeout_s=1.5 s.*"
                                                r"stop it, or raise SALIENT_CATALOG_LOCK_TIMEOUT_S"):
            Catalog.open(store).jobs()
        assert time.monotonic() - t0 >= 1.4
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.setenv("SALIENT_CATALOG_LOCK_TIMEOUT_S", "30")
    holder = subprocess.Popen(_python(code) + ["1.0"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert Catalog.open(store).mark_running("j")["status"] == "running"  # waited for the holder to let go
    finally:
        holder.kill()
        holder.wait()


def test_reading_never_writes_the_catalog(catalog, capsys):
    """`salient sql` (even `select 1`), jobs ls/show, datasets ls, models ls, catalog show/check leave
    catalog.duckdb byte for byte as it was: reads open it with read_only=True and build views elsewhere."""
    from api.cli import main

    catalog.create_job("j", dataset="toy", split=None, spec={}, total_rows=1, shards_total=1)
    path = catalog.store.catalog_path
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    for argv in (["sql", "SELECT 1"], ["sql", "SELECT count(*) FROM rationales"], ["jobs", "ls"], ["jobs", "show", "j"],
                 ["datasets", "ls"], ["models", "ls"], ["catalog", "show"], ["catalog", "check"]):
        assert main(["--store", str(catalog.store.root), *argv]) == 0, capsys.readouterr().err
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert not path.with_name(path.name + ".wal").exists()
    assert run_sql(catalog, "SELECT count(*) FROM jobs").rows == [(1,)]


def test_threads_share_one_catalog_and_writes_are_not_lost(store):
    """The REST service calls one Catalog from many threads (and may hold a second object on the same file)."""
    from concurrent.futures import ThreadPoolExecutor

    a, b = Catalog.open(store), Catalog.open(store)

    def work(i: int) -> str:
        cat = a if i % 2 else b
        job_id = f"t{i}"
        cat.create_job(job_id, dataset="toy", split=None, spec={"i": i}, total_rows=1, shards_total=1)
        cat.mark_running(job_id)
        assert run_sql(cat, f"SELECT status FROM jobs WHERE job_id = '{job_id}'").rows == [("running",)]
        assert any(j["job_id"] == job_id for j in cat.jobs())
        return cat.mark_succeeded(job_id)["status"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(work, range(24))) == ["succeeded"] * 24
    assert {j["job_id"]: j["status"] for j in a.jobs()} == {f"t{i}": "succeeded" for i in range(24)}
    assert a.version == b.version == 24 * 3  # each of the 72 writes bumped the shared counter once
