"""The read-only SQL sandbox (storage.sql): what it refuses, what it bounds, and that it recovers."""
from __future__ import annotations

import time

import duckdb
import pytest

from storage import Catalog, Store
from storage.ingest import ingest
from storage.sql import TABLES, Sandbox, SQLRefused, SQLTimeout, check_statement, check_time_limit, run_sql


@pytest.fixture(scope="module")
def sandbox_catalog(tmp_path_factory, shared_datasets):
    root = tmp_path_factory.mktemp("sql")
    (root / "secret.csv").write_text("password\nhunter2\n")
    cat = Catalog.open(Store.open(root / "store"))
    ingest(cat, "svamp", shared_datasets / "svamp")
    yield cat
    cat.close()


def ok(cat) -> None:
    """The next ordinary query still works."""
    assert run_sql(cat, "SELECT count(*) AS n FROM examples").rows == [(1000,)]


def outside(cat) -> str:
    return str(cat.store.root.parent / "secret.csv")


@pytest.mark.parametrize("sql", [
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('{root}/datasets/../../secret.csv')",
    "SELECT * FROM read_parquet('{outside}')",
    "SELECT * FROM parquet_metadata('/etc/hostname')",
    "SELECT * FROM '{outside}'",
])
def test_files_outside_the_store_are_refused(sandbox_catalog, sql):
    cat = sandbox_catalog
    query = sql.format(outside=outside(cat), root=cat.store.root)
    with pytest.raises(SQLRefused, match="Cannot access file.*reads only the store"):
        run_sql(cat, query)
    ok(cat)


@pytest.mark.parametrize("sql, name", [
    ("SELECT * FROM read_csv('{outside}')", "read_csv"),
    ("SELECT * FROM read_csv_auto('{outside}')", "read_csv_auto"),
    ("SELECT * FROM read_text('{outside}')", "read_text"),
    ("SELECT * FROM read_blob('/etc/hostname')", "read_blob"),
    ("SELECT * FROM read_json_auto('{outside}')", "read_json_auto"),
    ("SELECT * FROM read_text('secret.csv')", "read_text"),
    ("SELECT * FROM checkpoint()", "checkpoint"),
    ("SELECT * FROM truncate_duckdb_logs()", "truncate_duckdb_logs"),
    ("SELECT * FROM register_external_resource_type('x', 'y')", "register_external_resource_type"),
    ("SELECT * FROM force_checkpoint()", "force_checkpoint"),
    ("SELECT * FROM query('SELECT 1')", "query"),
    ("SELECT * FROM enable_logging()", "enable_logging"),
    ("SELECT (SELECT count(*) FROM read_duckdb('{root}/catalog.duckdb'))", "read_duckdb"),
    ("WITH c AS (SELECT * FROM checkpoint()) SELECT * FROM examples WHERE EXISTS (SELECT * FROM c)", "checkpoint"),
])
def test_table_functions_outside_the_allowlist_are_refused(sandbox_catalog, sql, name):
    cat = sandbox_catalog
    with pytest.raises(SQLRefused, match=rf"table function {name} is not allowed.*allowed table functions: .*read_parquet"):
        run_sql(cat, sql.format(outside=outside(cat), root=cat.store.root))
    ok(cat)


@pytest.mark.parametrize("sql", ["SELECT setseed(0.5)", "SELECT nextval('s')", "SELECT write_log('x')",
                                 "SELECT * FROM examples WHERE input = (SELECT setseed(0.1)::VARCHAR)"])
def test_state_changing_scalar_functions_are_refused(sandbox_catalog, sql):
    with pytest.raises(SQLRefused, match="changes state and is refused"):
        run_sql(sandbox_catalog, sql)
    ok(sandbox_catalog)


@pytest.mark.parametrize("sql, kind", [
    ("COPY (SELECT 1) TO '{root}/out.csv'", "COPY"),
    ("COPY examples TO '{root}/out.parquet' (FORMAT parquet)", "COPY"),
    ("EXPORT DATABASE '{root}/dump'", "EXPORT"),
    ("ATTACH '{root}/catalog.duckdb' AS c", "ATTACH"),
    ("ATTACH ':memory:' AS m", "ATTACH"),
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("SET enable_external_access = true", "SET"),
    ("SET threads = 64", "SET"),
    ("RESET memory_limit", "SET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"),
    ("CREATE MACRO m() AS 1", "CREATE"),
    ("INSERT INTO jobs SELECT * FROM jobs", "INSERT"),
    ("UPDATE datasets SET active = false", "UPDATE"),
    ("DELETE FROM datasets", "DELETE"),
    ("DROP VIEW examples", "DROP"),
    ("CALL pragma_version()", "CALL"),
    ("BEGIN TRANSACTION", "TRANSACTION"),
])
def test_non_read_statements_are_refused(sandbox_catalog, sql, kind):
    cat = sandbox_catalog
    with pytest.raises(SQLRefused, match=f"{kind} statements are refused.*Allowed: SELECT"):
        run_sql(cat, sql.format(root=cat.store.root))
    assert not (cat.store.root / "out.csv").exists() and not (cat.store.root / "dump").exists()
    ok(cat)


@pytest.mark.parametrize("sql, message", [
    ("SELECT 1; DROP TABLE jobs", "exactly one statement"),
    ("EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'", "EXPLAIN is allowed only for a SELECT"),
    ("SELEC 1", "does not parse"),
])
def test_multiple_explain_and_unparsable(sandbox_catalog, sql, message):
    with pytest.raises(SQLRefused, match=message):
        run_sql(sandbox_catalog, sql)
    ok(sandbox_catalog)


def test_read_statements_are_allowed(sandbox_catalog):
    cat = sandbox_catalog
    result = run_sql(cat, "WITH s AS (SELECT split FROM examples) SELECT split, count(*) FROM s GROUP BY split ORDER BY split")
    assert result.rows == [("test", 200), ("train", 800)]
    assert run_sql(cat, "FROM datasets SELECT name, rows ORDER BY rows").rows == [("svamp", 200), ("svamp", 800)]
    described = run_sql(cat, "DESCRIBE examples")
    assert described.columns[:2] == ["column_name", "column_type"]
    assert [r[0] for r in described.rows][:6] == ["example_id", "input", "target", "choices", "split", "dataset"]
    summary = run_sql(cat, "SUMMARIZE SELECT target FROM examples")
    assert summary.row_count == 1 and summary.as_dicts()[0]["column_name"] == "target"
    assert summary.as_dicts()[0]["count"] == 1000
    tables = {r[0] for r in run_sql(cat, "SHOW TABLES").rows}
    assert set(TABLES) <= tables
    plan = run_sql(cat, "EXPLAIN SELECT * FROM examples")
    assert plan.columns == ["explain_key", "explain_value"] and "READ_PARQUET" in str(plan.rows).upper()
    assert run_sql(cat, "VALUES (1, 'a')").rows == [(1, "a")]
    assert run_sql(cat, "SELECT count(*) FROM range(10) t(i), unnest([1, 2]) u(j)").rows == [(20,)]


def test_store_files_stay_readable_and_settings_are_locked(sandbox_catalog):
    cat = sandbox_catalog
    direct = run_sql(cat, f"SELECT count(*) FROM read_parquet('{cat.store.root}/datasets/*/*/part-*.parquet')")
    assert direct.rows == [(1000,)]
    settings = dict(run_sql(cat, "SELECT name, value FROM duckdb_settings() WHERE name IN "
                                 "('enable_external_access', 'lock_configuration', 'threads')").rows)
    assert settings == {"enable_external_access": "false", "lock_configuration": "true", "threads": "2"}


def test_python_variables_are_not_readable(sandbox_catalog):
    sandbox_catalog_table = duckdb.sql("SELECT 1 AS leaked").to_arrow_table()  # noqa: F841 - the bait
    with pytest.raises(duckdb.CatalogException):
        run_sql(sandbox_catalog, "SELECT * FROM sandbox_catalog_table")
    ok(sandbox_catalog)


def test_long_query_is_interrupted_at_the_time_limit(sandbox_catalog):
    ok(sandbox_catalog)  # a live worker first: the bound below times the limit, not a worker's start
    start = time.perf_counter()
    with pytest.raises(SQLTimeout, match=r"stopped after the 0.5 s time limit.*SALIENT_SQL_TIME_LIMIT_S"):
        run_sql(sandbox_catalog, "SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 7 = 3", time_limit_s=0.5)
    assert time.perf_counter() - start < 3
    ok(sandbox_catalog)


def test_ten_million_rows_are_capped_and_reported_truncated(sandbox_catalog):
    ok(sandbox_catalog)  # (as above: a worker killed by the previous test is started outside the timing)
    start = time.perf_counter()
    result = run_sql(sandbox_catalog, "SELECT i, i * 2 AS j FROM range(10000000) t(i)", max_rows=500)
    assert result.truncated and result.row_count == 500 and result.rows[-1] == (499, 998)
    assert time.perf_counter() - start < 2
    assert not run_sql(sandbox_catalog, "SELECT * FROM range(500)", max_rows=500).truncated
    ok(sandbox_catalog)


def test_memory_is_bounded(sandbox_catalog):
    box = Sandbox(sandbox_catalog, memory_limit="64MB", threads=1)
    try:
        with pytest.raises(SQLRefused, match="sql_memory_limit=64MB"):
            box.run("SELECT list(i) FROM range(50000000) t(i)")
        assert box.run("SELECT 42").rows == [(42,)]
    finally:
        box.close()


def test_env_settings_bound_rows(sandbox_catalog, monkeypatch):
    monkeypatch.setenv("SALIENT_SQL_MAX_ROWS", "7")
    result = run_sql(sandbox_catalog, "SELECT * FROM examples")
    assert result.row_count == 7 and result.truncated and result.max_rows == 7


def test_sandbox_follows_catalog_changes(tmp_path, shared_datasets):
    with Catalog.open(Store.open(tmp_path / "s")) as cat:
        assert run_sql(cat, "SELECT count(*) FROM examples").rows == [(0,)]
        ingest(cat, "anli1", shared_datasets / "anli1")
        assert run_sql(cat, "SELECT dataset, count(*) FROM examples GROUP BY ALL").rows == [("anli1", 2000)]
        cat.create_job("j1", dataset="anli1", split="test", spec={}, total_rows=1000, shards_total=1)
        assert run_sql(cat, "SELECT status FROM jobs").rows == [("queued",)]
        cat.mark_running("j1")
        assert run_sql(cat, "SELECT status FROM jobs").rows == [("running",)]
        cat.register_run({"run_id": "r1", "dataset": "anli1", "student": "tiny", "status": "succeeded"})
        assert run_sql(cat, "SELECT run_id, status FROM runs").rows == [("r1", "succeeded")]


def test_check_statement_uses_the_parser_not_keywords():
    assert check_statement("select 'DROP TABLE x' AS s") == "select 'DROP TABLE x' AS s"
    with pytest.raises(SQLRefused, match="sql_max_query_chars=10"):
        check_statement("SELECT 1 + 1 + 1", max_chars=10)
