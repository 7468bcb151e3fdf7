"""Ingest bounded at any size, and strict about what it takes (storage.ingest / readers / templates).

The size tests run the ingest in a child process that reports its own peak RSS (VmHWM), so "the
over-long line was never buffered whole" is measured, not assumed.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.ingest import IngestOptions, ingest
from storage.templates import TemplateError, check_template

REPO = Path(__file__).resolve().parents[2]
MiB = 2**20

_CHILD = textwrap.dedent("""
    import sys
    from storage import Catalog, Store
    from storage.ingest import IngestOptions, ingest
    cat = Catalog.open(Store.open(sys.argv[1]))
    try:
        ingest(cat, "big", sys.argv[2], IngestOptions(format=sys.argv[3]))
        print("ingested")
    except ValueError as exc:
        print("refused:", exc)
    print("datasets:", len(cat.datasets()))
    cat.close()
    # VmHWM: this process image's own peak RSS (wait4's ru_maxrss would include the parent's pages at fork)
    print("peak:", next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
""")


def ingest_in_child(tmp_path, source, fmt="jsonl", **env) -> tuple[str, int]:
    """(stdout, peak RSS bytes) of a child process that ingests `source`."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), **{k.upper(): str(v) for k, v in env.items()}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    errors = tmp_path / "child.err"
    with open(errors, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path / "store"), str(source), fmt],
                                stdout=subprocess.PIPE, stderr=err, env=environ)
        out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, errors.read_text()
    peak_kib = int(out.split("peak:")[1].split()[0])
    return out, peak_kib * 1024


def _sparse_long_line_file(path: Path, good_before: int, long_bytes: int, good_after: int) -> int:
    """JSONL with one line of `long_bytes` (a sparse run of zero bytes inside a string); returns its line number."""
    with open(path, "wb") as f:
        for i in range(good_before):
            f.write(json.dumps({"input": f"question {i}", "target": "a"}).encode() + b"\n")
        f.write(b'{"input": "')
        f.seek(long_bytes, os.SEEK_CUR)  # a hole: reads as zeros, costs no disk
        f.write(b'"}\n')
        for i in range(good_after):
            f.write(json.dumps({"input": f"later {i}", "target": "b"}).encode() + b"\n")
    return good_before + 1


def test_over_long_line_in_a_big_file_is_refused_by_line_with_bounded_memory(tmp_path):
    src = tmp_path / "big.jsonl"
    line = _sparse_long_line_file(src, good_before=5000, long_bytes=1500 * MiB, good_after=1000)
    assert src.stat().st_size > 1500 * MiB
    out, peak = ingest_in_child(tmp_path, src, salient_ingest_max_line_bytes=MiB)
    assert f"big.jsonl:{line}: line is longer than ingest_max_line_bytes={MiB} bytes" in out, out
    assert "datasets: 0" in out
    assert peak < 400 * MiB, f"peak RSS {peak / MiB:.0f} MiB while refusing a 1.5 GB line"
    assert not any(p.name.startswith(".ingest-") for p in (tmp_path / "store").iterdir())
    assert not (tmp_path / "store" / "datasets").exists()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_endless_line_source_is_refused_without_reading_it_whole(tmp_path, fmt):
    """`salient datasets add x /dev/zero` once reached 23 GB; now it stops after ingest_max_line_bytes."""
    out, peak = ingest_in_child(tmp_path, "/dev/zero", fmt, salient_ingest_max_line_bytes=4 * MiB)
    assert f"/dev/zero:1: line is longer than ingest_max_line_bytes={4 * MiB} bytes" in out, out
    assert peak < 400 * MiB, f"peak RSS {peak / MiB:.0f} MiB"


def test_peak_memory_does_not_grow_with_the_file(tmp_path):
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    for path, rows in ((small, 2_000), (big, 200_000)):
        with open(path, "w") as f:
            for i in range(rows):
                f.write(json.dumps({"input": f"question {i} " + "word " * 40, "target": str(i % 7), "n": i}) + "\n")
    peaks = {}
    for path in (small, big):
        out, peaks[path.name] = ingest_in_child(tmp_path / path.stem, path, salient_ingest_batch_rows=5000)
        assert "ingested" in out and "datasets: 1" in out, out
    assert big.stat().st_size > 40 * MiB
    # 100x the rows, a bounded difference: batches and row groups, not the file
    assert peaks["big.jsonl"] - peaks["small.jsonl"] < 150 * MiB, {k: v / MiB for k, v in peaks.items()}


def test_batches_agree_on_ids_and_types(catalog, tmp_path, monkeypatch):
    """Repeated inputs and ids are found across batches; a column's type may change between batches."""
    monkeypatch.setenv("SALIENT_INGEST_BATCH_ROWS", "2")
    src = tmp_path / "b.jsonl"
    rows = [{"input": "same", "extra": None}, {"input": "x", "extra": None}, {"input": "y", "extra": 3},
            {"input": "same", "extra": 4.5}, {"input": "z", "extra": "text"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (r,) = ingest(catalog, "b", src)
    got = catalog.query("SELECT example_id, input, extra FROM examples ORDER BY source_index")
    assert len({g["example_id"] for g in got}) == 5
    assert got[0]["example_id"] != got[3]["example_id"]  # the repeated input got positional ids
    assert [g["extra"] for g in got] == [None, None, "3.0", "4.5", "text"]  # 3 and 4.5 shared a batch
    assert pq.ParquetFile(catalog.store.absolute(r.path)).metadata.num_rows == 5
    dup = tmp_path / "d.jsonl"
    dup.write_text("".join(json.dumps({"id": i % 3 if i != 4 else 0, "input": f"q{i}"}) + "\n" for i in range(3)) +
                   json.dumps({"id": 7, "input": "q3"}) + "\n" + json.dumps({"id": 1, "input": "q4"}) + "\n")
    with pytest.raises(ValueError, match=r"d\.jsonl:5: example id '1' already used at .*d\.jsonl:2"):
        ingest(catalog, "d", dup)
    assert [d["name"] for d in catalog.datasets()] == ["b"]


# ------------------------------------------------------------------ strict inputs
@pytest.mark.parametrize("value, kind", [(12345, "an integer"), (["a", "b"], "a list"), ({"q": "a"}, "an object"),
                                         (1.5, "a number"), (True, "a boolean")])
def test_typed_field_error_names_line_and_field(catalog, tmp_path, value, kind):
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps({"input": "fine", "target": "a"}) + "\n\n" + json.dumps({"input": value, "target": "b"}) + "\n")
    with pytest.raises(ValueError, match=rf"t\.jsonl:3: field 'input' is {kind} \(.*\), expected a string; .*--coerce"):
        ingest(catalog, "t", src)
    assert catalog.datasets() == []


def test_target_and_id_take_integers_but_not_lists(catalog, tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps({"id": 7, "input": "a", "label": 0}) + "\n" + json.dumps({"id": 8, "input": "b", "label": [1]}) + "\n")
    with pytest.raises(ValueError, match=r"t\.jsonl:2: field 'label' is a list \(\[1\]\), expected a string or an integer"):
        ingest(catalog, "t", src)
    src.write_text(json.dumps({"id": 7, "input": "a", "label": 0}) + "\n")
    ingest(catalog, "t", src)
    assert catalog.query("SELECT example_id, target FROM examples") == [{"example_id": "7", "target": "0"}]


def test_coerce_stores_values_as_text(catalog, tmp_path):
    src = tmp_path / "c.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"input": 12345, "target": 2.0}, {"input": ["a", "b"], "target": {"k": 1}}, {"input": "plain", "target": True}]) + "\n")
    with pytest.raises(ValueError, match="--coerce"):
        ingest(catalog, "c", src)
    (r,) = ingest(catalog, "c", src, IngestOptions(coerce=True))
    assert catalog.query("SELECT input, target FROM examples ORDER BY source_index") == [
        {"input": "12345", "target": "2"}, {"input": '["a", "b"]', "target": '{"k": 1}'},
        {"input": "plain", "target": "true"}]
    (again,) = ingest(catalog, "c", src, IngestOptions(coerce=True))
    assert again.status == "unchanged" and again.version == r.version


@pytest.mark.parametrize("line", ['{"input": "a", "score": NaN}', '{"input": "a", "score": Infinity}',
                                  '{"input": "a", "score": -Infinity}', '{"input": "a", "score": 1e999}'])
def test_nan_and_infinities_are_refused(catalog, tmp_path, line):
    src = tmp_path / "n.jsonl"
    src.write_text('{"input": "ok", "score": 1.5}\n' + line + "\n")
    with pytest.raises(ValueError, match=r"n\.jsonl:2: .*(NaN and infinities are refused)"):
        ingest(catalog, "n", src)
    assert catalog.datasets() == []


def test_nan_in_parquet_is_refused_with_its_row(catalog, tmp_path):
    src = tmp_path / "n.parquet"
    pq.write_table(pa.table({"input": ["a", "b", "c"], "score": [0.5, 1.0, float("nan")]}), src)
    with pytest.raises(ValueError, match=r"n\.parquet:row 2: field 'score' is nan \(NaN and infinities are refused\)"):
        ingest(catalog, "n", src)


@pytest.mark.parametrize("template, shown", [
    ("{input.__class__}", "{input.__class__}"),
    ("{input.__class__.__init__.__globals__}", "{input.__class__.__init__.__globals__}"),
    ("{x[0]}", "{x[0]}"),
    ("{x!r}", "{x!r}"),
    ("{x:>10}", "{x:>10}"),
    ("{}", "{}"),
    ("{0}", "{0}"),
])
def test_templates_allow_plain_fields_only(catalog, tmp_path, template, shown):
    with pytest.raises(TemplateError, match=r"template .*: " + re.escape(shown) + r" is not allowed; "
                                            r"only plain \{field\} substitution"):
        IngestOptions(input_template=template)
    with pytest.raises(TemplateError):
        check_template(template, ["input", "x"])


def test_template_values_are_not_formatted_again(catalog, tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps({"q": "{input.__class__}", "n": 3, "c": "ctx {{x}}"}) + "\n")
    ingest(catalog, "t", src, IngestOptions(input_template="Q: {q} ({n}) {{literal}} {c}"))
    assert catalog.query("SELECT input FROM examples")[0]["input"] == "Q: {input.__class__} (3) {literal} ctx {{x}}"
    t = check_template("{a} and {b} and {a}", fields=["a", "b"])
    assert t.fields == ("a", "b") and t.render({"a": "1", "b": "2"}) == "1 and 2 and 1"
    with pytest.raises(TemplateError, match="names field 'c', which the records lack"):
        check_template("{c}", fields=["a", "b"])
    with pytest.raises(TemplateError, match="not valid"):
        check_template("{a")


@pytest.mark.parametrize("name", ["qa\n", "qa\nother", "\nqa", "qa/x", "..", ""])
def test_names_are_checked_with_a_full_match(catalog, tmp_path, name):
    src = tmp_path / "q.jsonl"
    src.write_text('{"input": "a"}\n')
    with pytest.raises(ValueError, match="invalid dataset name"):
        ingest(catalog, name, src)
    with pytest.raises(ValueError, match="invalid split name"):
        IngestOptions(split="train\n")
    assert catalog.datasets() == []


def test_cli_refuses_templates_and_coerces_on_request(tmp_path, capsys):
    from api.cli import EXIT_USAGE, main

    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps({"input": 12345, "q": "x"}) + "\n")
    store = str(tmp_path / "store")
    assert main(["--store", store, "datasets", "add", "c", str(src), "--input-template", "{q.__class__}"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "{q.__class__} is not allowed; only plain {field} substitution" in err
    assert main(["--store", store, "datasets", "add", "c", str(src)]) == EXIT_USAGE
    assert "c.jsonl:1: field 'input' is an integer (12345), expected a string" in capsys.readouterr().err
    assert main(["--store", store, "datasets", "add", "c", str(src), "--coerce"]) == 0
    assert main(["--store", store, "sql", "SELECT input FROM examples", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "12345"
