"""Idempotency-Key bindings written behind the answer (api/app/idempotency.py), on a real catalog file."""
from __future__ import annotations

import time

import pytest

from api.app.idempotency import KeyBinder
from storage import Catalog, Store
from storage.catalog import Catalog as CatalogClass


@pytest.fixture
def job(catalog) -> str:
    """A job in the catalog for keys to name."""
    return catalog.create_job("j1", dataset="d", split="test", spec={}, total_rows=1, shards_total=1)["job_id"]


def test_bindings_are_written_behind_many_to_a_write(catalog, job, catalog_opens):
    binder = KeyBinder(catalog)  # not started: flush() is the writer thread's step, run here by hand
    for i in range(16):
        binder.bind(f"k{i}", "j1", {"i": i})
    binder.bind("k3", "j9", {"i": 99})  # the first binding of a key wins, here too
    n = catalog_opens["writes"]
    binder.flush()
    assert catalog_opens["writes"] - n == 1, "sixteen pending keys should take one catalog write"
    with Catalog.open(Store.open(catalog.store.root)) as fresh:  # another process, or a restart
        assert fresh.idempotency_key("k3") == ("j1", {"i": 3})
        assert fresh.idempotency_key("k15") == ("j1", {"i": 15})


def test_the_writer_thread_stores_bindings_and_stop_writes_the_rest(catalog, job):
    binder = KeyBinder(catalog).start()
    binder.bind("a", "j1", {"x": 1})
    deadline = time.monotonic() + 30
    while catalog.idempotency_key("a") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert catalog.idempotency_key("a") == ("j1", {"x": 1})
    binder.bind("b", "j1", {"x": 2})
    binder.stop()
    assert catalog.idempotency_key("b") == ("j1", {"x": 2})


def test_a_failed_write_keeps_the_bindings_for_the_next_one(catalog, job, monkeypatch):
    binder = KeyBinder(catalog)
    binder.bind("a", "j1", {"x": 1})
    real = CatalogClass.bind_idempotency_keys

    def busy(self, bindings):
        raise RuntimeError("catalog busy")

    monkeypatch.setattr(CatalogClass, "bind_idempotency_keys", busy)
    with pytest.raises(RuntimeError, match="busy"):
        binder.flush()
    monkeypatch.setattr(CatalogClass, "bind_idempotency_keys", real)
    binder.flush()
    assert catalog.idempotency_key("a") == ("j1", {"x": 1})
