"""`salient attribute-local`: a whole dataset attributed in-process, shards committed, SQL sees them."""
from __future__ import annotations

import json

from aw_helpers import ingest_rows

from api.cli import main
from storage import Catalog, Store


def _ingest(store_root, rows):
    store = Store.open(store_root)
    with Catalog.open(store) as cat:
        ingest_rows(cat, rows)
    return store


def test_attribute_local_commits_shards_and_resumes(tmp_path, tiny_teachers, make_examples, capsys):
    rows = [{k: r[k] for k in ("example_id", "input", "target", "choices", "split")} for r in make_examples(7)]
    rows[3]["input"] = " "  # a bad row is kept with its error
    store = _ingest(tmp_path / "store", rows)
    argv = ["--store", str(store.root), "attribute-local", "--dataset", "toy", "--teacher", tiny_teachers["seq2seq"],
            "--method", "occlusion", "--k", "2", "--shard-size", "3", "--max-new-tokens", "3"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"] == 7 and summary["shards"] == 3 and summary["error_rows_now"] == 1
    with Catalog.open(store) as cat:
        job = cat.get_job(summary["job_id"])
        assert job["status"] == "succeeded" and job["shards_done"] == 3
        assert job["spec"]["engine"]["template"] is None and job["spec"]["engine"]["method"] == "occlusion"  # template from the format
        got = cat.query("SELECT example_id, split, method, len(rationale) AS k, error, comprehensiveness "
                        "FROM rationales ORDER BY example_id")
        assert [g["example_id"] for g in got] == sorted(r["example_id"] for r in rows)
        assert {g["split"] for g in got} == {"test"} and {g["method"] for g in got} == {"occlusion"}
        assert [g["error"] is not None for g in got] == [r["input"] == " " for r in sorted(rows, key=lambda r: r["example_id"])]
        assert all(g["k"] == 2 for g in got if g["error"] is None)
    # the same command again is a no-op: every shard is committed
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["job_id"] == summary["job_id"] and again["attributed_now"] == 0 and again["skipped_shards"] == 3
    with Catalog.open(store) as cat:
        assert cat.query("SELECT count(*) AS n FROM rationales")[0]["n"] == 7


def test_attribute_local_unknown_dataset_is_a_usage_error(tmp_path, tiny_teachers, capsys):
    store = _ingest(tmp_path / "store", [{"example_id": "1", "input": "a", "target": None, "choices": None, "split": "test"}])
    code = main(["--store", str(store.root), "attribute-local", "--dataset", "nope", "--teacher", tiny_teachers["seq2seq"]])
    assert code == 2 and "no dataset 'nope'" in capsys.readouterr().err
