"""Fixtures of the trainer tests (helpers live in st_helpers.py)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from st_helpers import add_job, toy_rows

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # benchmarks/ is not an installed package: its parts (benchmarks.distill) load from here


@pytest.fixture
def toy(catalog):
    """Dataset `toy`: job1 with train (80 rows, every 10th an error) and test (30 rows)."""
    add_job(catalog, "toy", "job1", {"train": toy_rows(80, "train", error_every=10), "test": toy_rows(30, "test")})
    return catalog


@pytest.fixture(scope="module")
def dq():
    """benchmarks/distill_quality.py, the command, imported as a module (its parts are benchmarks.distill)."""
    bench = ROOT / "benchmarks" / "distill_quality.py"
    spec = importlib.util.spec_from_file_location("distill_quality", bench)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
