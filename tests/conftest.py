"""Fixtures shared by every test package: a fresh store, its catalog, the shared datasets."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("SALIENT_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.fail(f"{SHARED_DATASETS} is missing: check out ../shared beside the repo or set SALIENT_SHARED_DATASETS")
    return SHARED_DATASETS


@pytest.fixture
def store(tmp_path):
    from storage import Store

    return Store.open(tmp_path / "store")


@pytest.fixture
def catalog(store):
    from storage import Catalog

    cat = Catalog.open(store)
    yield cat
    cat.close()


@pytest.fixture
def catalog_opens(monkeypatch):
    """Counts the attaches of catalog.duckdb: "n" all of them (one per read that missed the read cache,
    one per write), "writes" the writable ones."""
    from storage.catalog import Catalog

    counter = {"n": 0, "writes": 0}
    real = Catalog._connect

    def counting(self, read_only):
        counter["n"] += 1
        counter["writes"] += not read_only
        return real(self, read_only)

    monkeypatch.setattr(Catalog, "_connect", counting)
    return counter


def pytest_collection_modifyitems(config, items):
    """GPU tests skip cleanly without CUDA (torchtune's gpu_test)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
