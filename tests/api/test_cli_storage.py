"""`salient datasets|sql|catalog` end to end through api.cli.main (in-process, real store files)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from api.cli import EXIT_LOCKED, EXIT_USAGE, main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def cli(tmp_path, capsys):
    store = str(tmp_path / "store")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--store", store, *argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    run.store = store
    return run


def test_datasets_add_ls_show_and_readd(cli, shared_datasets):
    code, out, _ = cli("datasets", "add", "svamp", str(shared_datasets / "svamp"))
    assert code == 0 and "added" in out and "800" in out and "200" in out
    code, out, _ = cli("datasets", "add", "svamp", str(shared_datasets / "svamp"), "--format", "svamp")
    assert code == 0 and "nothing to do" in out and "added" not in out
    code, out, _ = cli("datasets", "add", "anli1", str(shared_datasets / "anli1"), "--split", "test", "--no-llm")
    assert code == 0
    code, out, _ = cli("datasets", "ls")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["name", "split", "version", "rows"] and len(lines) == 2 + 3
    code, out, _ = cli("datasets", "show", "anli1", "--rows", "1")
    assert code == 0 and "4aae63a8-fcf7-406c-a2f3-50c31c5934a9" in out and "llm_rationale" not in out
    code, _, err = cli("datasets", "show", "nope")
    assert code == EXIT_USAGE and "salient datasets ls" in err


def test_corrupted_line_exits_2_with_file_and_line(cli, tmp_path):
    src = tmp_path / "data.jsonl"
    src.write_text('{"input": "a", "target": "b"}\n{"input": "c", "target": \n')
    code, _, err = cli("datasets", "add", "d", str(src))
    assert code == EXIT_USAGE and f"{src}:2: invalid JSON" in err and "nothing was written" in err
    assert cli("datasets", "ls")[1].startswith("no datasets yet")


def test_sql_formats_refusals_and_truncation(cli, shared_datasets):
    cli("datasets", "add", "svamp", str(shared_datasets / "svamp"), "--split", "test")
    code, out, _ = cli("sql", "SELECT split, count(*) AS n FROM examples GROUP BY split")
    assert code == 0 and out.splitlines()[2].split() == ["test", "200"]
    code, out, _ = cli("sql", "SELECT example_id, target FROM examples ORDER BY source_index LIMIT 2", "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "example_id,target" and len(out.splitlines()) == 3
    assert "\r" not in out and out.endswith("\n")  # \n line ends, as DuckDB's CLI writes
    code, out, err = cli("sql", "SELECT * FROM range(100000)", "--format", "json", "--limit", "5")
    assert code == 0 and [json.loads(line)["range"] for line in out.splitlines()] == [0, 1, 2, 3, 4]
    assert "truncated: showing the first 5 rows" in err
    code, _, err = cli("sql", "DELETE FROM datasets")
    assert code == EXIT_USAGE and "DELETE statements are refused" in err
    code, _, err = cli("sql", "SELECT * FROM no_such_table")
    assert code == EXIT_USAGE and "SQL error" in err and "DESCRIBE rationales" in err
    code, _, err = cli("sql", "SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 3 = 1", "--time-limit", "0.3")
    assert code == 1 and "time limit" in err
    assert cli("sql", "SELECT count(*) FROM examples")[0] == 0


def test_catalog_rebuild_after_deleting_the_catalog(cli, shared_datasets):
    cli("datasets", "add", "svamp", str(shared_datasets / "svamp"))
    query = "SELECT dataset, split, count(*), min(example_id), max(target) FROM examples GROUP BY ALL ORDER BY ALL"
    before = cli("sql", query, "--format", "csv")[1]
    os.remove(os.path.join(cli.store, "catalog.duckdb"))
    assert cli("sql", "SELECT count(*) AS n FROM examples", "--format", "csv")[1].splitlines()[1] == "0"
    code, out, _ = cli("catalog", "rebuild")
    assert code == 0 and "2 datasets" in out
    assert cli("sql", query, "--format", "csv")[1] == before


def test_a_stuck_foreign_lock_holder_exits_3_naming_it(cli, monkeypatch):
    """Salient's own processes hold the catalog only per operation; something else holding it
    read-write past catalog_lock_timeout_s gets exit 3 and a message naming its PID and the fix."""
    from storage import Catalog, Store

    Catalog.open(Store.open(cli.store)).create_job("j", dataset="toy", split=None, spec={}, total_rows=1, shards_total=1)
    code = f"""
        import time, duckdb
        con = duckdb.connect({os.path.join(cli.store, "catalog.duckdb")!r})
        print("open", flush=True)
        time.sleep(60)
    """
    monkeypatch.setenv("SALIENT_CATALOG_LOCK_TIMEOUT_S", "1")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        code_, _, err = cli("jobs", "ls")
        assert code_ == EXIT_LOCKED and f"process {holder.pid}" in err and "SALIENT_CATALOG_LOCK_TIMEOUT_S" in err
    finally:
        holder.kill()
        holder.wait()
    assert cli("jobs", "ls")[0] == 0


@pytest.mark.parametrize("argv", [["datasets", "add", "--help"], ["sql", "--help"], ["datasets", "--help"]])
def test_help_exits_0(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0 and "usage: salient" in capsys.readouterr().out


def test_generic_csv_with_template_from_the_shell(cli, tmp_path):
    src = tmp_path / "qa.csv"
    src.write_text("title,body,label\nWeather,Is it raining?,yes\n")
    code, out, _ = cli("datasets", "add", "qa", str(src), "--input-template", r"{title}\n{body}", "--split", "dev")
    assert code == 0 and "added" in out
    code, out, _ = cli("sql", "SELECT input, target, split FROM examples", "--format", "json")
    assert json.loads(out) == {"input": "Weather\nIs it raining?", "target": "yes", "split": "dev"}
