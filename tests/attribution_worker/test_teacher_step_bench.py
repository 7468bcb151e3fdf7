"""benchmarks/teacher_step.py runs end to end at a tiny size (the CQA table in the README is its default run)."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "teacher_step.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("teacher_step", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_teacher_step_benchmark_small(bench, tmp_path, capsys):
    """The e-SNLI MiniLM classifier, 1 step per setting: one row per setting, the whole batch first at 1.00x, and
    the JSON rows carry the same medians."""
    out_json = tmp_path / "rows.json"
    bench.main(["--dataset", "esnli", "--rows", "12", "--batch", "4", "--micro-batches", "2", "--steps", "2",
                "--rounds", "1", "--threads", "1", "--json", str(out_json)])
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (\d+)( \(whole batch\))? \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$", out, re.MULTILINE)
    assert [(r[0], r[1], r[2]) for r in rows] == [("4", " (whole batch)", "4"), ("2", "", "2")], out
    assert rows[0][5] == "1.00"
    saved = json.loads(out_json.read_text())
    assert [r["examples per pass"] for r in saved] == [4, 2]
    assert all(r["median s/step"] > 0 for r in saved)
    assert saved[1]["speed-up vs whole batch"] == pytest.approx(saved[0]["median s/step"] / saved[1]["median s/step"])


@pytest.mark.parametrize("sizes, says", [
    (["8", "0"], "--micro-batches must be at least 1 (examples per forward pass), got [0]"),
    (["8", "32"], "--micro-batches [32]: not below --batch 32, so one pass"),
    (["8", "8"], "--micro-batches [8, 8]: each size once"),
])
def test_teacher_step_benchmark_refuses_sizes_it_cannot_compare(bench, capsys, sizes, says):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--micro-batches", *sizes])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_teacher_step_benchmark_reads_anli_r1_through_its_ingest_format(bench):
    """--dataset anli1: ingest detects the anli format of the anli1 directory; every target is one of the labels."""
    pairs, labels = bench.training_pairs("anli1", 5)
    assert len(pairs) == 5 and labels == ["entailment", "neutral", "contradiction"]
    assert all(target in labels for _, target in pairs)
    assert all("premise:" in text and "hypothesis:" in text for text, _ in pairs)
