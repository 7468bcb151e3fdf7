"""The catalog's read cache (storage/catalog.py `_cached`): reads are answered again from memory while
catalog.duckdb is unchanged, and every commit, by this process or another, is seen by the next read.

The other process is a real one (`python -c` on this checkout) writing through its own Catalog.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from storage import Catalog, Store
from storage.catalog import Catalog as CatalogClass
from storage.sql import Sandbox

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from storage import Catalog, Store
cat = Catalog.open(Store.open(sys.argv[1]))
for line in sys.stdin:
    i = int(line)
    cat.commit_shard("j1", index=i, path=f"s{i}.parquet", rows=1, error_rows=0, bytes_=1)
    print(i, flush=True)
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog.open(Store.open(tmp_path / "store"))
    cat.create_job("j1", dataset="d", split="test", spec={}, total_rows=100, shards_total=100)
    return cat


def test_an_unchanged_catalog_is_read_once(catalog, catalog_opens):
    first = catalog.get_job("j1")
    n = catalog_opens["n"]
    for _ in range(20):
        assert catalog.get_job("j1") == first
        assert catalog.state() == catalog.state()
    catalog.state()
    assert catalog_opens["n"] <= n + 1  # the state's first read; get_job never opened the file again


def test_returned_rows_are_copies(catalog):
    catalog.get_job("j1")["status"] = "changed by the caller"
    assert catalog.get_job("j1")["status"] == "queued"


def test_own_writes_are_seen_by_the_next_read(catalog):
    assert catalog.get_job("j1")["status"] == "queued"
    catalog.mark_running("j1")
    assert catalog.get_job("j1")["status"] == "running"
    assert catalog.commit_shard("j1", index=0, path="s0.parquet", rows=5, error_rows=0, bytes_=1)
    assert catalog.get_job("j1")["done_rows"] == 5


def test_every_commit_of_another_process_is_seen_by_the_next_read(catalog, catalog_opens):
    """A writer process commits shard after shard as fast as it can; after each, this process reads."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(catalog.store.root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=_env())
    try:
        for i in range(40):
            before = catalog.get_job("j1")["done_rows"]
            assert before == i
            assert catalog.get_job("j1")["done_rows"] == i  # unchanged file: from the cache
            proc.stdin.write(f"{i}\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == str(i)
            assert catalog.get_job("j1")["done_rows"] == i + 1, f"commit {i} of the other process not seen"
            assert catalog.committed_shards("j1") == set(range(i + 1))
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert catalog_opens["n"] < 40 * 3, "every read opened the file: the cache is not used"


def test_a_replaced_or_damaged_file_is_not_served_from_the_cache(catalog):
    catalog.get_job("j1")
    path = catalog.store.catalog_path
    data = path.read_bytes()
    path.write_bytes(b"not a duckdb file" * 1000)
    with pytest.raises(Exception, match="cannot be opened as a DuckDB catalog"):
        catalog.get_job("j1")
    path.write_bytes(data)
    assert catalog.get_job("j1")["status"] == "queued"
    path.unlink()
    assert catalog.get_job("j1") is None  # no file: an empty catalog, not the cached row


def test_cached_reads_keep_the_lock_of_a_transaction_in_progress(catalog):
    """Closing any descriptor of a file drops the process's fcntl locks on it (POSIX), DuckDB's too: the
    signature checks of cached reads in other threads must not, while this thread holds the file."""
    catalog.get_job("j1")  # read once: the next reads are answered from the cache
    path = str(catalog.store.catalog_path)
    with catalog._transaction() as con:
        con.execute("UPDATE jobs SET message = 'in progress' WHERE job_id = 'j1'")
        seen = []
        reader = threading.Thread(target=lambda: seen.extend(catalog.get_job("j1")["message"] for _ in range(20)))
        reader.start()
        reader.join(timeout=60)
        assert seen == [None] * 20  # the committed state, without waiting for the transaction
        other = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1])", path],
                               capture_output=True, text=True, timeout=120)
        assert other.returncode != 0 and "lock" in other.stderr.lower(), "another process could open the file"
    assert catalog.get_job("j1")["message"] == "in progress"


def test_cache_off_with_zero_entries(tmp_path, monkeypatch, catalog_opens):
    monkeypatch.setenv("SALIENT_CATALOG_READ_CACHE_ENTRIES", "0")
    cat = Catalog.open(Store.open(tmp_path / "nocache"))
    cat.create_job("j1", dataset="d", split="test", spec={}, total_rows=1, shards_total=1)
    n = catalog_opens["n"]
    for _ in range(5):
        cat.get_job("j1")
    assert catalog_opens["n"] == n + 5


# ------------------------------------------------------------------ the SQL sandbox's workers
def test_sandbox_keeps_its_worker_and_follows_another_process(catalog):
    box = Sandbox(catalog, workers=2)
    try:
        assert box.run("SELECT count(*) FROM jobs").rows == [(1,)]
        pids = box.worker_pids()
        assert len(pids) == 1
        assert box.run("SELECT status FROM jobs").rows == [("queued",)]
        assert box.worker_pids() == pids  # a second query: the same process, no new one
        subprocess.run([sys.executable, "-c", "import sys; from storage import Catalog, Store; "
                        "Catalog.open(Store.open(sys.argv[1])).mark_running('j1')", str(catalog.store.root)],
                       check=True, env=_env(), timeout=120)
        assert box.run("SELECT status FROM jobs").rows == [("running",)]  # the other process's write
        assert box.worker_pids() == pids  # seen by refreshing the worker's tables, not by a new worker
    finally:
        box.close()
    assert box.worker_pids() == []


def test_sandbox_runs_up_to_sql_workers_queries_at_once(catalog):
    box = Sandbox(catalog, workers=2)
    slow = "SELECT count(*) FROM range(100000000) t(i) WHERE i % 7 = 3"
    results, errors = [], []

    def one():
        try:
            results.append(box.run(slow, time_limit_s=60).rows)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=one) for _ in range(4)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert results == [[(14285714,)]] * 4
        assert len(box.worker_pids()) == 2, "four queries at once should use both workers and no more"
        assert time.monotonic() - start < 120
    finally:
        box.close()


def test_waiting_queries_get_a_worker_first_come_first_served(catalog):
    """A freed worker goes to the oldest waiting query; with a race for it, one query of a busy service
    waited 0.3-0.6 s while others that came later went first."""
    box = Sandbox(catalog, workers=1)
    done: list[int] = []

    def one(i: int, sql: str) -> None:
        box.run(sql, time_limit_s=60)
        done.append(i)

    try:
        box.run("SELECT 1")  # the worker is up: the order below is the queue's, not the start-up's
        threads = [threading.Thread(target=one, args=(0, "SELECT count(*) FROM range(300000000) t(i) WHERE i % 7 = 3"))]
        threads[0].start()
        deadline = time.monotonic() + 30
        while box._idle and time.monotonic() < deadline:  # the long query takes the one worker
            time.sleep(0.005)
        for i in range(1, 7):
            threads.append(threading.Thread(target=one, args=(i, f"SELECT {i}")))
            threads[-1].start()
            while len(box._waiting) < i and time.monotonic() < deadline:  # query i is queued behind i - 1
                time.sleep(0.005)
        assert len(box._waiting) == 6, "the six short queries should all be waiting for the one worker"
        for t in threads:
            t.join(60)
        assert done == list(range(7))
    finally:
        box.close()


def test_one_catalog_read_brings_every_worker_up_to_date(catalog, shared_datasets, monkeypatch):
    box = Sandbox(catalog, workers=2)
    reads = {"n": 0}
    real = CatalogClass.snapshot_tables

    def counting(self, *args, **kwargs):
        reads["n"] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CatalogClass, "snapshot_tables", counting)
    try:
        box.warm()  # what the service does at start: both workers up before the first query
        assert len(box.worker_pids()) == 2 and reads["n"] == 1
        pids = sorted(box.worker_pids())
        from storage.ingest import ingest

        ingest(catalog, "anli1", shared_datasets / "anli1")  # new files: both workers rebuild their views
        box.warm()
        assert reads["n"] == 2, "the second worker should reuse the first one's read of the catalog"
        catalog.mark_running("j1")  # a table-only change
        box.warm()
        assert reads["n"] == 3
        assert sorted(box.worker_pids()) == pids
        for _ in range(2):
            assert box.run("SELECT count(*) FROM examples").rows == [(2000,)]
            assert box.run("SELECT status FROM jobs").rows == [("running",)]
    finally:
        box.close()


def test_a_new_file_list_refreshes_the_worker_connection_in_place(catalog, shared_datasets, tmp_path):
    """The worker keeps its connection, its lock-down and DuckDB's Parquet footer cache across a commit;
    only a plan with other locked settings opens a new one."""
    from storage.ingest import ingest
    from storage.sql import WorkerState

    box = Sandbox(catalog, workers=1)
    state = WorkerState()
    try:
        state.build(box._plan(catalog.snapshot_tables(), catalog.view_files()))
        con = state.con
        ingest(catalog, "anli1", shared_datasets / "anli1")
        assert state.build(box._plan(catalog.snapshot_tables(), catalog.view_files())) == ("ok",)
        assert state.con is con
        assert state.query("SELECT count(*) FROM examples", 10, 1 << 20)[0] == "result"
        assert con.execute("SELECT count(*) FROM examples").fetchall() == [(2000,)]
        assert con.execute("SELECT value FROM duckdb_settings() WHERE name = 'lock_configuration'").fetchall() == [("true",)]
        (tmp_path / "outside.csv").write_text("a\n1\n")
        with pytest.raises(duckdb.PermissionException):
            state.query(f"SELECT * FROM read_csv('{tmp_path / 'outside.csv'}')", 10, 1 << 20)
        plan = box._plan(catalog.snapshot_tables(), catalog.view_files())
        state.build({**plan, "threads": 1})
        assert state.con is not con
        assert state.con.execute("SELECT current_setting('threads')").fetchall() == [(1,)]
    finally:
        if state.con is not None:
            state.con.close()
        box.close()


def test_an_idempotency_key_bound_to_an_existing_job_outlives_the_process(catalog):
    """A key that found a job another key created names that job for good, with the body it came with."""
    assert catalog.idempotency_key("k1") is None
    state = catalog.state()
    assert catalog.bind_idempotency_keys({"k1": ("j1", {"k": 3})}) == {"k1": ("j1", {"k": 3})}
    assert catalog.state() == state, "the SQL sandbox does not copy idempotency_keys: nothing to refresh"
    catalog.create_job("j3", dataset="d", split="test", spec={"k": 5}, total_rows=1, shards_total=1,
                       idempotency_key="k3")
    # in one write: the first binding wins, a job's own key stays its own, a new key is stored
    assert catalog.bind_idempotency_keys({"k1": ("j2", {"k": 4}), "k3": ("j1", {"k": 6}), "k4": ("j3", {"k": 5})}) == \
        {"k1": ("j1", {"k": 3}), "k3": ("j3", {"k": 5}), "k4": ("j3", {"k": 5})}
    with Catalog.open(Store.open(catalog.store.root)) as fresh:  # another process, or a restart
        assert fresh.idempotency_key("k1") == ("j1", {"k": 3})
        assert fresh.idempotency_key("k3") == ("j3", {"k": 5})
        assert fresh.idempotency_key("k4") == ("j3", {"k": 5})
        assert fresh.idempotency_key("k2") is None

