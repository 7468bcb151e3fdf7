"""Dataset ingestion on the real shared DSS files and on small generic files (storage.ingest)."""
from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.adapters import parse_anli_llm, parse_cqa_llm, parse_esnli_llm, parse_svamp_llm
from storage.ingest import IngestOptions, ingest, part_info

# (store name, directory, format) -> {split: rows} as SOURCE.md gives them
SHARED = {
    ("cqa", "cqa", "cqa"): {"train": 9741, "test": 1221},
    ("svamp", "svamp", "svamp"): {"train": 800, "test": 200},
    ("esnli", "esnli", "esnli"): {"valid": 9842, "test": 9824},
    ("anli1", "anli1", "anli"): {"valid": 1000, "test": 1000},
}


def store_files(store) -> list[str]:
    return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*")
                  if p.is_file() and not p.name.startswith("catalog.duckdb"))


@pytest.mark.parametrize("key", list(SHARED), ids=[k[0] for k in SHARED])
def test_shared_dataset_ingests_with_source_counts(catalog, shared_datasets, key):
    name, directory, fmt = key
    results = ingest(catalog, name, shared_datasets / directory, IngestOptions(format=fmt))
    assert {r.split: r.rows for r in results} == SHARED[key]
    assert all(r.status == "added" for r in results)
    stats = catalog.query(
        "SELECT split, count(*) AS n, count(DISTINCT example_id) AS ids, count(llm_rationale) AS llm, "
        "count(target) AS targets FROM examples WHERE dataset = ? GROUP BY split", [name])
    for row in stats:
        expected = SHARED[key][row["split"]]
        assert row["n"] == row["ids"] == row["llm"] == row["targets"] == expected, row
    for r in results:  # the footer carries what Catalog.rebuild reads
        meta = part_info(catalog.store.absolute(r.path))
        assert meta["salient.rows"] == str(r.rows) and meta["salient.split"] == r.split
        assert meta["salient.version"] == r.version and meta["salient.content_hash"].startswith(r.version)


def test_inputs_are_built_as_source_md_describes(catalog, shared_datasets):
    for name, fmt in (("cqa", "cqa"), ("svamp", "svamp"), ("esnli", "esnli"), ("anli1", "anli")):
        ingest(catalog, name, shared_datasets / name, IngestOptions(format=fmt, split="test"))
    first = {r["dataset"]: r for r in catalog.query("SELECT * FROM examples WHERE source_index = 0")}
    assert first["cqa"]["input"] == (
        "A beaver is know for building prowess, their supplies come from where?\nAnswer Choices:\n"
        "(a) british columbia\n(b) body of water\n(c) wooded area\n(d) pay debts\n(e) zoo")
    assert first["cqa"]["target"] == "wooded area"
    assert first["cqa"]["example_id"] == "080ef6941410139d6869e78122bc741e"
    assert first["cqa"]["choices"] == ["british columbia", "body of water", "wooded area", "pay debts", "zoo"]
    assert first["cqa"]["llm_label"] == "wooded area"
    assert first["cqa"]["llm_rationale"].endswith("only wooded areas have the supplies that beavers need.")
    assert first["svamp"]["input"].startswith("Paige was helping her mom plant flowers")
    assert first["svamp"]["input"].endswith("\nHow many seeds did they plant?")
    assert first["svamp"]["target"] == "( 10.0 * 45.0 )" and first["svamp"]["choices"] is None
    assert first["svamp"]["llm_label"] == "(10 * 45)"
    assert first["esnli"]["input"] == ("premise: This church choir sings to the masses as they sing joyous songs from "
                                       "the book at a church.\nhypothesis: The church has cracks in the ceiling.")
    assert first["esnli"]["target"] == "neutral" and first["esnli"]["llm_label"] == "neutral"
    assert first["esnli"]["choices"] == ["entailment", "neutral", "contradiction"]
    assert first["anli1"]["example_id"] == "4aae63a8-fcf7-406c-a2f3-50c31c5934a9"
    assert first["anli1"]["target"] == "entailment" and first["anli1"]["llm_label"] == "contradiction"


def test_repeated_inputs_get_distinct_stable_ids(catalog, shared_datasets):
    """e-SNLI valid has premise/hypothesis pairs that occur twice; their hash ids include split and position."""
    ingest(catalog, "esnli", shared_datasets / "esnli", IngestOptions(split="valid", llm=False))
    dup = catalog.query("SELECT input, list(example_id ORDER BY source_index) AS ids FROM examples "
                        "GROUP BY input HAVING count(*) > 1")
    assert len(dup) == 2 and all(len(set(r["ids"])) == 2 for r in dup)
    before = catalog.query("SELECT example_id FROM examples ORDER BY source_index")
    other = type(catalog).open(catalog.store.root.parent / "second")  # the same file elsewhere: the same ids
    try:
        ingest(other, "esnli", shared_datasets / "esnli", IngestOptions(split="valid", llm=False))
        assert other.query("SELECT example_id FROM examples ORDER BY source_index") == before
    finally:
        other.close()


def test_reingest_is_a_noop(catalog, shared_datasets):
    first = ingest(catalog, "svamp", shared_datasets / "svamp")
    files = {p: (catalog.store.root / p).stat().st_mtime_ns for p in store_files(catalog.store)}
    rows = catalog.query("SELECT * FROM datasets ORDER BY split")
    again = ingest(catalog, "svamp", shared_datasets / "svamp", IngestOptions(format="svamp"))
    assert [r.status for r in again] == ["unchanged", "unchanged"]
    assert [r.version for r in again] == [r.version for r in first]
    assert {p: (catalog.store.root / p).stat().st_mtime_ns for p in store_files(catalog.store)} == files
    assert catalog.query("SELECT * FROM datasets ORDER BY split") == rows


def test_changed_content_is_a_new_version_and_readding_the_old_one_reactivates_it(catalog, tmp_path):
    src = tmp_path / "qa.jsonl"
    v1 = [{"id": "a", "input": "2+2?", "target": "4"}, {"id": "b", "input": "3+3?", "target": "6"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in v1))
    (old,) = ingest(catalog, "qa", src)
    src.write_text("".join(json.dumps(r) + "\n" for r in v1 + [{"id": "c", "input": "1+1?", "target": "2"}]))
    (new,) = ingest(catalog, "qa", src)
    assert new.status == "added" and new.version != old.version
    assert catalog.query("SELECT count(*) AS n FROM examples")[0]["n"] == 3
    src.write_text("".join(json.dumps(r) + "\n" for r in v1))
    (back,) = ingest(catalog, "qa", src)
    assert back.status == "reactivated" and back.version == old.version
    assert catalog.query("SELECT version FROM datasets WHERE active")[0]["version"] == old.version
    catalog.rebuild()  # the files alone say the same
    assert catalog.query("SELECT version FROM datasets WHERE active")[0]["version"] == old.version


def test_corrupted_jsonl_line_fails_with_line_number_and_store_unchanged(catalog, shared_datasets, tmp_path):
    ingest(catalog, "svamp", shared_datasets / "svamp")
    before_files, before_rows = store_files(catalog.store), catalog.query("SELECT * FROM datasets ORDER BY split")
    bad = tmp_path / "cqa"
    bad.mkdir()
    # train is parsed after test: a writer that did not validate everything first would leave the test part behind
    shutil.copy(shared_datasets / "cqa" / "cqa_test.json", bad / "cqa_test.json")
    lines = (shared_datasets / "cqa" / "cqa_train.json").read_text().splitlines(keepends=True)
    lines[56] = lines[56][: len(lines[56]) // 2] + "\n"  # line 57 cut in half
    (bad / "cqa_train.json").write_text("".join(lines))
    with pytest.raises(ValueError, match=r"cqa_train\.json:57: invalid JSON .*nothing was written"):
        ingest(catalog, "cqa", bad)
    assert store_files(catalog.store) == before_files
    assert catalog.query("SELECT * FROM datasets ORDER BY split") == before_rows
    assert not (catalog.store.datasets_dir / "cqa").exists()


def test_invalid_record_names_line_and_field(catalog, tmp_path):
    src = tmp_path / "cqa_test.json"
    good = {"id": "x", "question": "q?", "choices": list("abcde"), "answer": "c"}
    src.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "y", "choices": ["a", "b"]}) + "\n")
    with pytest.raises(ValueError, match=r"cqa_test\.json:2: field 'choices' must be a list of 5 strings"):
        ingest(catalog, "cqa", src)
    src.write_text(json.dumps(good) + "\n" + json.dumps({**good, "answer": "z"}) + "\n")
    with pytest.raises(ValueError, match=r":2: answer 'z' is not one of the choices"):
        ingest(catalog, "cqa", src)
    assert catalog.datasets() == []


def test_duplicate_source_ids_are_rejected(catalog, tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text('{"id": "1", "input": "a"}\n\n{"id": "1", "input": "b"}\n')
    with pytest.raises(ValueError, match=r"d\.jsonl:3: example id '1' already used at .*d\.jsonl:1"):
        ingest(catalog, "d", src)


def test_generic_formats_with_field_mapping(catalog, tmp_path):
    jsonl = tmp_path / "trivia.jsonl"
    jsonl.write_text(json.dumps({"qid": 7, "q": "Capital of France?", "a": "Paris", "opts": ["Paris", "Rome"],
                                 "topic": "geo", "input": "shadowed"}) + "\n")
    (r,) = ingest(catalog, "trivia", jsonl, IngestOptions(id_field="qid", input_field="q", target_field="a",
                                                          choices_field="opts", split="dev"))
    row = catalog.query("SELECT * FROM examples WHERE dataset = 'trivia'")[0]
    assert (row["example_id"], row["input"], row["target"], row["choices"], row["split"]) == (
        "7", "Capital of France?", "Paris", ["Paris", "Rome"], "dev")
    assert row["topic"] == "geo" and row["source_input"] == "shadowed"

    csv_path = tmp_path / "nli.csv"
    csv_path.write_text('premise,hypothesis,label,choices\n"A man, smiling.",A person smiles.,entailment,"[""entailment"", ""neutral""]"\n')
    ingest(catalog, "nli", csv_path, IngestOptions(input_template="{premise} => {hypothesis}"))
    row = catalog.query("SELECT * FROM examples WHERE dataset = 'nli'")[0]
    assert row["input"] == "A man, smiling. => A person smiles." and row["target"] == "entailment"
    assert row["choices"] == ["entailment", "neutral"] and len(row["example_id"]) == 16

    pq_path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"input": ["x", "y"], "label": [0, 1]}), pq_path)
    ingest(catalog, "p", pq_path, IngestOptions(split="test"))
    assert catalog.query("SELECT target FROM examples WHERE dataset = 'p' ORDER BY source_index") == [
        {"target": "0"}, {"target": "1"}]


def test_generic_errors_name_the_fix(catalog, tmp_path):
    src = tmp_path / "x.jsonl"
    src.write_text('{"question": "q"}\n')
    with pytest.raises(ValueError, match="--input-field FIELD or build it with --input-template"):
        ingest(catalog, "x", src)
    with pytest.raises(ValueError, match="names field 'missing'"):
        ingest(catalog, "x", src, IngestOptions(input_template="{question} {missing}"))
    bad_csv = tmp_path / "x.csv"
    bad_csv.write_text("input,target\na,b\nc,d,e\n")
    with pytest.raises(ValueError, match=r"x\.csv:3: the number of fields differs"):
        ingest(catalog, "x", bad_csv)
    with pytest.raises(ValueError, match="apply to --format jsonl/csv/parquet only"):
        ingest(catalog, "x", tmp_path, IngestOptions(format="cqa", input_field="q"))
    with pytest.raises(ValueError, match="cannot tell the format"):
        ingest(catalog, "x", tmp_path)
    assert catalog.datasets() == [] and not catalog.store.datasets_dir.exists()


def test_missing_split_says_what_is_present(catalog, shared_datasets):
    with pytest.raises(ValueError, match=r"no split 'train' for anli; present: test, valid \(anli1_train\.json"):
        ingest(catalog, "anli1", shared_datasets / "anli1", IngestOptions(split="train"))


def test_llm_parsers_follow_dss():
    assert parse_cqa_llm("Beavers need wood. So the answer is (c) wooded area.\n\nQ: next") == ("Beavers need wood.", "wooded area")
    assert parse_cqa_llm("no answer here\n\nQ: x") == ("no answer here", None)
    assert parse_svamp_llm("10 * 45 is 450. The answer is (10 * 45).\n\nQ: x") == ("10 * 45 is 450.", "(10 * 45)")
    assert parse_svamp_llm("nothing") == ("", None)
    assert parse_esnli_llm("Not all churches crack.\nAnswer: neutral\n\nPremise: x") == ("Not all churches crack.", "neutral")
    assert parse_anli_llm("London is in Europe. So the answer is entailment.\n\nPremise: x") == ("London is in Europe.", "entailment")
    assert parse_anli_llm("no verdict") == ("", None)


def test_ingest_settings_bound_lines_and_shape_parts(catalog, tmp_path, monkeypatch):
    src = tmp_path / "s.jsonl"
    src.write_text("".join(json.dumps({"input": f"question {i}"}) + "\n" for i in range(10)) + json.dumps({"input": "x" * 200}) + "\n")
    monkeypatch.setenv("SALIENT_INGEST_MAX_LINE_BYTES", "100")
    with pytest.raises(ValueError, match=r"s\.jsonl:11: line is longer than ingest_max_line_bytes=100 bytes"):
        ingest(catalog, "s", src)
    monkeypatch.setenv("SALIENT_INGEST_MAX_LINE_BYTES", "1000")
    monkeypatch.setenv("SALIENT_PARQUET_ROW_GROUP_SIZE", "4")
    monkeypatch.setenv("SALIENT_DATASET_VERSION_CHARS", "20")
    (r,) = ingest(catalog, "s", src)
    assert len(r.version) == 20
    assert pq.ParquetFile(catalog.store.absolute(r.path)).metadata.num_row_groups == 3  # 11 rows / 4


def test_original_svamp_json_array_with_a_template_matches_the_dss_splits(catalog, shared_datasets):
    """SVAMP.json is one JSON array; DSS builds input = Body + "\\n" + Question, label = Equation."""
    (r,) = ingest(catalog, "svamp_orig", shared_datasets / "svamp" / "SVAMP.json",
                  IngestOptions(id_field="ID", input_template="{Body}\n{Question}", target_field="Equation", split="all"))
    assert r.rows == 1000
    ingest(catalog, "svamp", shared_datasets / "svamp")
    pairs = catalog.query(
        "SELECT count(*) AS n, count(DISTINCT o.example_id) AS ids FROM examples o JOIN examples d "
        "ON o.input = d.input AND o.target = d.target WHERE o.dataset = 'svamp_orig' AND d.dataset = 'svamp'")
    assert pairs == [{"n": 1000, "ids": 1000}]
    row = catalog.query("SELECT * FROM examples WHERE example_id = 'chal-1'")[0]
    assert row["Answer"] == 51.0 and row["Type"] == "Subtraction"
