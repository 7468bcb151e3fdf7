"""benchmarks/sql_scan.py runs end to end at a tiny size (the 1M-row run is `make bench`)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "sql_scan.py"


def test_sql_scan_benchmark_small(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("sql_scan", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--rows", "3000", "--shard-rows", "1000", "--repeats", "1", "--store", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "wrote 3,000 rationale rows" in out
    for name in bench.QUERIES:
        assert f"| {name} |" in out
    assert not (tmp_path / "b").exists()  # removed unless --keep
