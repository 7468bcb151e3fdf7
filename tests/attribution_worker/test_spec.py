"""One job spec everywhere: JobSpec nests AttributionConfig; CLI flags and help come from its fields."""
from __future__ import annotations

import argparse
import json

import pytest
from aw_helpers import ingest_rows

from api.cli import main
from attribution_worker.config import AttributionConfig
from attribution_worker.spec import JobSpec, add_spec_arguments, cli_fields, spec_fields_from_args
from storage import Catalog, Store


def test_flat_and_nested_specs_are_the_same_and_old_rows_load():
    nested = JobSpec(dataset="d", engine={"teacher": "t", "k": 3, "baseline": "pad"})
    flat = JobSpec(dataset="d", teacher="t", k=3, baseline="pad")
    assert nested == flat and nested.engine == AttributionConfig(teacher="t", k=3, baseline="pad")
    assert nested.default_job_id() == flat.default_job_id()
    assert JobSpec(**nested.model_dump()) == nested  # the stored spec round-trips
    old_row = {"kind": "attribute-local", "dataset": "d", "teacher": "t", "k": 3, "baseline": "pad", "shard_size": 7}
    assert JobSpec.from_stored(old_row).engine.k == 3
    with pytest.raises(ValueError, match="both at the top level and inside engine"):
        JobSpec(dataset="d", k=2, engine={"teacher": "t", "k": 3})
    # every engine option changes the job id; runtime fields do not
    base = JobSpec(dataset="d", teacher="t")
    for change in ({"ig_steps_per_pass": 2}, {"dtype": "fp32"}, {"score_choices": False}, {"max_ig_error": 0.1}):
        assert JobSpec(dataset="d", teacher="t", **change).default_job_id() != base.default_job_id(), change
    assert JobSpec(dataset="d", teacher="t", actors=3).default_job_id() == base.default_job_id()


def _parse(argv: list[str], ray: bool = True) -> dict:
    p = argparse.ArgumentParser()
    add_spec_arguments(p, ray=ray)
    return spec_fields_from_args(p.parse_args(argv), ray=ray)


def test_every_field_is_a_flag_with_its_docstring_as_help():
    names = {n for n, _ in cli_fields()}
    assert set(AttributionConfig.model_fields) - {"extra"} <= names
    assert set(JobSpec.model_fields) - {"engine", "dataset_versions"} <= names
    assert "actors" not in {n for n, _ in cli_fields(ray=False)}
    p = argparse.ArgumentParser()
    add_spec_arguments(p)
    helps = {a.dest: a.help for a in p._actions}
    for name, info in cli_fields():
        assert info.description and helps[name].startswith(info.description.replace("%", "%%")), name
    assert AttributionConfig.model_fields["k"].description.startswith("Rationale size")  # the docstring
    got = _parse(["--dataset", "d", "--teacher", "t", "--no-faithfulness", "--ig-steps-per-pass", "2",
                  "--resources", '{"gpu_node": 1}', "--baseline", "zero", "--max-ig-error", "0.05"])
    assert got == {"dataset": "d", "teacher": "t", "faithfulness": False, "ig_steps_per_pass": 2,
                   "actor_resources": {"gpu_node": 1}, "baseline": "zero", "max_ig_error": 0.05}
    spec = JobSpec(**got)
    assert spec.engine.faithfulness is False and spec.engine.ig_steps_per_pass == 2


def test_settings_registry_is_one(monkeypatch):
    from attribution_worker.cluster import JOB_SETTINGS, job_setting
    from storage.settings import SETTINGS, get_setting

    assert set(JOB_SETTINGS) <= set(SETTINGS)
    monkeypatch.setenv("SALIENT_MAX_RETRIES", "0")  # 0 retries is meaningful: both readers accept it
    assert job_setting("max_retries") == 0 == get_setting("max_retries")
    assert JobSpec(dataset="d", teacher="t").max_retries == 0
    monkeypatch.setenv("SALIENT_MAX_RETRIES", "-1")
    for read in (job_setting, get_setting):
        with pytest.raises(ValueError, match="SALIENT_MAX_RETRIES='-1': setting max_retries must be >= 0"):
            read("max_retries")
    monkeypatch.setenv("SALIENT_SHARD_SIZE", "0")
    with pytest.raises(ValueError, match="must be positive"):
        job_setting("shard_size")


def _ingest(store, rows):
    with Catalog.open(store) as cat:
        ingest_rows(cat, rows)


def test_attribute_local_resume_over_reingested_data_is_refused(tmp_path, tiny_teachers, make_examples, capsys):
    rows = [{k: r[k] for k in ("example_id", "input", "target", "choices", "split")} for r in make_examples(4)]
    store = Store.open(tmp_path / "store")
    _ingest(store, rows)
    argv = ["--store", str(store.root), "attribute-local", "--dataset", "toy", "--teacher", tiny_teachers["seq2seq"],
            "--k", "2", "--max-new-tokens", "2", "--shard-size", "2"]
    assert main(argv) == 0
    job_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["job_id"]
    _ingest(store, [dict(r, input=r["input"] + " again") for r in rows])  # re-ingested: new content
    code = main(["--store", str(store.root), "attribute-local", "--resume", job_id])
    err = capsys.readouterr().err
    assert code == 2 and f"changed since job {job_id}" in err and "start a new job" in err
    assert main(["--store", str(store.root), "attribute-local", "--resume", job_id, "--k", "3"]) == 2
    assert "drop --k" in capsys.readouterr().err
    assert main(argv) == 0  # the same command over the new data: a new job
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["job_id"] != job_id


def test_every_engine_option_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "attribution.md").read_text()
    table = doc.split("## Config (`AttributionConfig`", 1)[1].split("\n## ", 1)[0]
    for name, info in AttributionConfig.model_fields.items():
        assert f"| `{name}` |" in table and info.description in table, name


def test_dataset_rows_slices_across_parts_and_row_groups(tmp_path, monkeypatch):
    """DatasetRows reads shards from Parquet row groups on demand: same rows as reading everything."""
    from attribution_worker.rows import DatasetRows

    monkeypatch.setenv("SALIENT_PARQUET_ROW_GROUP_SIZE", "7")  # several row groups per part
    store = Store.open(tmp_path / "store")
    rows = [{"example_id": f"e{i:03d}", "input": f"word{i} x", "target": "t", "choices": None} for i in range(50)]
    with Catalog.open(store) as cat:
        ingest_rows(cat, rows[:30], split="a")
        ingest_rows(cat, rows[30:], split="b")
        whole = DatasetRows.open(cat, "toy")
        everything = [r["example_id"] for r in whole.slice(0, 10**6).to_pylist()]
        assert whole.num_rows == 50 and sorted(everything) == [r["example_id"] for r in rows]
        assert [len(p.group_starts) for p in whole.parts] == [5, 3]  # 30 and 20 rows in groups of 7
        shards = [t.to_pylist() for _, t in whole.shards(9)]
        assert [r["example_id"] for s in shards for r in s] == everything and len(shards) == 6
        assert [r["example_id"] for r in whole.slice(27, 6).to_pylist()] == everything[27:33]  # across parts
        limited = DatasetRows.open(cat, "toy", limit=12)
        assert limited.num_rows == 12 and limited.slice(5, 100).num_rows == 7
        with pytest.raises(ValueError, match="salient datasets ls"):
            DatasetRows.open(cat, "nope")
