"""The SQL sandbox's limits hold against the attacks measured on the old in-process sandbox.

Each attack runs in a child process; its own peak RSS (VmHWM) and that of the SQL workers it
starts (RUSAGE_CHILDREN in that child) are measured, so the bound is measured, not assumed.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from storage.sql import SQLRefused, check_time_limit

REPO = Path(__file__).resolve().parents[2]
MiB = 2**20

_ATTACKS = textwrap.dedent("""
    import json, resource, sys, time
    from storage import Catalog, Store
    from storage.sql import Sandbox, SQLRefused, SQLTimeout
    cat = Catalog.open(Store.open(sys.argv[1]))
    box = Sandbox(cat)
    out = []
    for sql, limit in json.loads(sys.argv[2]):
        box.warm()  # a stopped query's worker is killed: time the limit, not the next worker's start
        start = time.monotonic()
        try:
            box.run(sql, time_limit_s=limit)
            outcome = "ran"
        except (SQLRefused, SQLTimeout) as exc:
            outcome = type(exc).__name__ + ": " + str(exc)
        out.append({"sql": sql, "outcome": outcome, "seconds": time.monotonic() - start})
    box.run("SELECT 1")
    box.close()
    cat.close()
    # VmHWM: this image's own peak (RUSAGE_SELF would include pytest's pages at fork); the workers'
    # peak is RUSAGE_CHILDREN (an upper bound: it includes this process's pages when each was forked)
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    usage = {"self": hwm * 1024, "workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}
    print(json.dumps({"results": out, "peak_rss": usage}))
""")


_CLI_WITH_PEAK = textwrap.dedent("""
    import atexit, sys
    def peak():
        hwm = next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        sys.stderr.write(f"peak: {hwm}\\n")
    atexit.register(peak)
    from api.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def run_attacks(tmp_path, attacks, **env) -> dict:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **{k.upper(): str(v) for k, v in env.items()}}
    proc = subprocess.run([sys.executable, "-c", _ATTACKS, str(tmp_path / "store"), json.dumps(attacks)],
                          capture_output=True, text=True, env=environ, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_memory_attacks_are_refused_with_peak_rss_bounded(tmp_path):
    """`repeat('a', 2000000000)` peaked at 4.2 GB against a 1 GB limit; now the worker stays under its bound."""
    report = run_attacks(tmp_path, [
        ["SELECT length(repeat('a', 2000000000))", 10],
        ["SELECT length(string_agg(repeat('x', 1000000), '')) FROM range(3000)", 10],
        ["SELECT max(length(l)) FROM (SELECT list(i) AS l FROM range(200000000) t(i))", 10],
    ], salient_sql_memory_limit="256MB", salient_sql_worker_overhead="256MB")
    for r in report["results"]:
        assert r["outcome"].startswith("SQLRefused") and "memory" in r["outcome"], r
        assert r["seconds"] < 10, r
    bound = 512 * 10**6  # sql_memory_limit + sql_worker_overhead
    assert report["peak_rss"]["workers"] < bound + 64 * MiB, report["peak_rss"]
    assert report["peak_rss"]["self"] < 400 * MiB, report["peak_rss"]  # the caller never holds the data


def test_time_limit_is_enforced_from_outside_within_a_margin(tmp_path):
    """The old sandbox's interrupt let a single huge function call run 16-22 s past a 10 s limit."""
    report = run_attacks(tmp_path, [
        ["SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 7 = 3", 1.0],
        ["SELECT max(length(repeat(i::VARCHAR, 1000))) FROM range(1000000000) t(i)", 1.0],
        ["SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range * b.range = 7", 1.0],
    ])
    for r in report["results"]:
        assert r["outcome"].startswith("SQLTimeout: query stopped after the 1 s time limit"), r
        assert 1.0 <= r["seconds"] < 3.0, r


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), math.inf, 0, -1, "1e9", "ten"])
def test_time_limit_values_are_validated(value):
    with pytest.raises(SQLRefused, match=r"time limit .*(finite number of seconds in \(0, 300\]|not a number)"):
        check_time_limit(value)
    assert check_time_limit(None) == 10.0 and check_time_limit("2.5") == 2.5 and check_time_limit(300) == 300


def test_time_limit_env_and_cap_are_settings(monkeypatch):
    monkeypatch.setenv("SALIENT_SQL_TIME_LIMIT_S", "nan")
    with pytest.raises(ValueError, match="SALIENT_SQL_TIME_LIMIT_S='nan': setting sql_time_limit_s must be a finite"):
        check_time_limit(None)
    monkeypatch.setenv("SALIENT_SQL_TIME_LIMIT_S", "5")
    monkeypatch.setenv("SALIENT_SQL_MAX_TIME_LIMIT_S", "3")
    with pytest.raises(SQLRefused, match=r"in \(0, 3\].*SALIENT_SQL_MAX_TIME_LIMIT_S"):
        check_time_limit(None)


def test_cli_time_limit_nan_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "api", "--store", str(tmp_path / "s"), "sql", "SELECT 1",
                           "--time-limit", "nan"], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 2 and "refused: time limit nan must be a finite number" in proc.stderr, proc.stderr


def test_huge_query_on_stdin_is_refused_without_reading_it_whole(tmp_path):
    """A 300 MB query on stdin was read whole before the length check; now at most sql_max_query_chars + 1."""
    proc = subprocess.Popen([sys.executable, "-c", _CLI_WITH_PEAK, "--store", str(tmp_path / "s"), "sql", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), "SALIENT_SQL_MAX_QUERY_CHARS": "1000"})
    chunk = b"SELECT 1 + " * (1 << 16)
    sent = 0
    try:
        while sent < 300 * 10**6:
            proc.stdin.write(chunk)
            sent += len(chunk)
    except BrokenPipeError:
        pass
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 2 and "over sql_max_query_chars=1000" in err, err
    assert sent < 300 * 10**6  # the reader stopped early; the pipe broke
    assert int(err.split("peak:")[1].split()[0]) * 1024 < 400 * MiB, err


def test_worker_restarts_after_a_kill_and_sees_catalog_changes(catalog, tmp_path):
    from storage.sql import Sandbox

    box = Sandbox(catalog)
    try:
        assert box.run("SELECT count(*) FROM examples").rows == [(0,)]
        first = box.worker_pids()
        start = time.monotonic()
        with pytest.raises(Exception, match="time limit"):
            box.run("SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 7 = 3", time_limit_s=0.3)
        assert time.monotonic() - start < 2.5
        catalog.create_job("j1", dataset="d", split="test", spec={}, total_rows=1, shards_total=1)
        assert box.run("SELECT job_id, status FROM jobs").rows == [("j1", "queued")]
        assert box.worker_pids() and box.worker_pids() != first
    finally:
        box.close()
