"""Many processes, one store (issue 8, items 1 and 6): a running job driver or trainer blocks nobody.

Every command here runs as a user runs it: `python -m api ...` in its own process, against a
store that a background job driver (or `salient train`) is writing at the same time. Before the
catalog opened per operation, each of these exited 3 ("catalog is locked").
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from storage import Catalog, rationale_table, write_shard
from test_jobs import make_rows, register

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[2]
READ_COMMANDS = (
    ("sql", "SELECT count(*) AS n FROM rationales"),
    ("sql", "SELECT 1"),
    ("jobs", "ls"),
    ("datasets", "ls"),
    ("models", "ls"),
)


def _env(**extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def _salient(store, *argv: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "api", "--store", str(store.root), *argv]
    return subprocess.run(cmd, env=env or _env(), capture_output=True, text=True, timeout=timeout)


def _wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _kill_group(pid: int) -> None:
    """Stop a process we started in its own session, and what it started (its Ray)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)


@pytest.fixture(scope="module")
def teacher(tiny_teachers):
    return tiny_teachers["seq2seq"]


def test_commands_run_beside_a_background_job_and_cancel_reaches_cancelled(store, teacher, make_examples):
    catalog = Catalog.open(store)
    rows = make_rows(4000, make_examples)
    register(catalog, rows)
    # slow enough to be running through every command below: integrated gradients with many steps, small shards,
    # one actor (catalog operations take a few ms, so the job itself must be slow). With 2,000 rows and 64 steps
    # the job was at 180 of 200 shards after the read commands on a busy machine, and once finished before the
    # cancel; here it is at about a fifth.
    out = _salient(store, "attribute", "--dataset", "toy", "--teacher", teacher, "--max-new-tokens", "3",
                   "--method", "integrated_gradients", "--n-steps", "256", "--shard-size", "10", "--actors", "1",
                   "--num-cpus-per-actor", "1", "--max-in-flight-per-actor", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    launched = json.loads(out.stdout.strip().splitlines()[-1])
    job_id, driver = launched["job_id"], launched["driver_pid"]
    assert launched["status"] == "running"  # the launcher watched the driver take the job
    try:
        _wait(lambda: catalog.get_job(job_id)["shards_done"] >= 1, 240, "a first committed shard")
        for argv in READ_COMMANDS + (("jobs", "show", job_id),):
            res = _salient(store, *argv)
            assert res.returncode == 0, f"salient {' '.join(argv)} exited {res.returncode}: {res.stderr[-2000:]}"
        assert "running" in _salient(store, "jobs", "ls").stdout
        sql = _salient(store, "sql", f"SELECT count(*) AS n FROM rationales WHERE job_id = '{job_id}'", "--format", "json")
        seen = json.loads(sql.stdout.splitlines()[0])["n"]
        assert seen >= 10 and seen % 10 == 0  # whole shards only
        mid = catalog.get_job(job_id)
        assert mid["status"] == "running", mid  # everything above happened while the job ran

        res = _salient(store, "jobs", "cancel", job_id)
        assert res.returncode == 0 and json.loads(res.stdout)["status"] == "cancelling", res.stderr
        job = _wait(lambda: (j := catalog.get_job(job_id))["status"] == "cancelled" and j, 120, "the job reaching cancelled")
        _wait(lambda: not _alive(driver), 60, "the driver exiting")
    finally:
        _kill_group(driver)
    assert 0 < job["shards_done"] < job["shards_total"], job
    assert job["message"].startswith("cancelled with")
    got = catalog.query("SELECT count(*) AS n, count(DISTINCT example_id) AS ids FROM rationales WHERE job_id = ?", [job_id])[0]
    assert got["n"] == got["ids"] == job["done_rows"] == 10 * job["shards_done"]  # committed shards kept, once each
    res = _salient(store, "jobs", "cancel", job_id)
    assert res.returncode == 2 and "is cancelled" in res.stderr


def test_a_driver_that_exits_before_running_fails_its_job(store, teacher, make_examples, tmp_path, monkeypatch, capsys):
    """The background driver never reaches the job (here: an interpreter that exits at once): the
    launcher marks the job failed with the exit code and the log's last lines, not queued forever."""
    from api.cli import main

    catalog = Catalog.open(store)
    register(catalog, make_rows(20, make_examples))
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'cannot start: no module named api' >&2\nexit 7\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    code = main(["--store", str(store.root), "attribute", "--dataset", "toy", "--teacher", teacher, "--job-id", "nodriver"])
    launched = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1 and launched["status"] == "failed"
    job = catalog.get_job("nodriver")
    assert job["status"] == "failed"
    assert "exited with code 7 before the job ran" in job["message"] and "cannot start" in job["message"]
    assert "salient attribute --resume nodriver" in job["message"]


def _trainer_rows(n: int, split: str) -> list[dict]:
    words = "the a of to in is on at by it".split()
    rows = []
    for i in range(n):
        label, cue = ("yes", "good") if i % 2 else ("no", "bad")
        toks = words[: 3 + i % 5] + [cue]
        rows.append(dict(example_id=f"{split}-{i}", input_text=" ".join(toks), target_text=label, teacher_model="toy",
                         method="saliency", teacher_output=label, teacher_correct=True, tokens=toks, rationale=[cue],
                         rationale_text=cue, error=None))
    return rows


def test_commands_run_beside_salient_train(store):
    catalog = Catalog.open(store)
    catalog.create_job("tjob", dataset="toy", split=None, spec={}, total_rows=140, shards_total=2)
    for index, split in enumerate(("train", "test")):
        table = rationale_table(_trainer_rows(100 if split == "train" else 40, split), dataset="toy", split=split,
                                job_id="tjob", shard_index=index)
        write_shard(catalog, table, dataset="toy", job_id="tjob", index=index)
    catalog.mark_running("tjob")
    catalog.mark_succeeded("tjob")
    cmd = [sys.executable, "-m", "api", "--store", str(store.root), "train", "--dataset", "toy", "--student", "tiny",
           "--steps", "100000", "--batch-size", "4", "--eval-every", "100000", "--checkpoint-every", "100000",
           "--run-id", "long-run", "--no-progress"]
    log = open(store.root / "train.log", "wb")
    trainer = subprocess.Popen(cmd, env=_env(OMP_NUM_THREADS="1"), stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        _wait(lambda: trainer.poll() is not None or any(r["run_id"] == "long-run" for r in catalog.runs()), 180,
              "the trainer recording its run")
        assert trainer.poll() is None, (store.root / "train.log").read_text()[-3000:]
        for argv in READ_COMMANDS + (("jobs", "show", "tjob"),):
            res = _salient(store, *argv)
            assert res.returncode == 0, f"salient {' '.join(argv)} exited {res.returncode}: {res.stderr[-2000:]}"
        assert "long-run" in _salient(store, "models", "ls").stdout
        assert trainer.poll() is None  # still training: the commands above ran beside it
        assert catalog.runs()[0]["status"] == "running"
    finally:
        _kill_group(trainer.pid)
        log.close()


def test_embedded_job_does_not_join_a_cluster_already_running_here(store, teacher, make_examples):
    """`ray start --head` on this machine (its address file where the driver looks: RAY_TMPDIR), then a job
    without RAY_ADDRESS: its actors run on a private Ray, none on that cluster. `--ray-address` joins it."""
    from local_ports import free_ports, port_open
    from test_two_node import _alive_nodes, _stop

    catalog = Catalog.open(store)
    register(catalog, make_rows(20, make_examples))
    tmp = tempfile.mkdtemp(prefix="rtemb", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = _env(RAY_TMPDIR=tmp, RAY_AUTH_MODE="disabled")
    gcs, *agent = free_ports(4)
    head = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--port", str(gcs),
            "--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--include-dashboard", "false", "--disable-usage-stats",
            "--dashboard-agent-listen-port", str(agent[0]), "--dashboard-agent-grpc-port", str(agent[1]),
            "--metrics-export-port", str(agent[2])]
    log = open(Path(tmp) / "ray-start.log", "ab")
    proc = subprocess.Popen(head, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: port_open(gcs), 120, "the head node's GCS")
        address = f"127.0.0.1:{gcs}"
        outside = _wait(lambda: _alive_nodes(address, env), 120, "the outside cluster's node")
        # where a bare ray.init() would find it; `ray start` writes it after the node is up, so wait for it
        _wait((Path(tmp) / "ray" / "ray_current_cluster").exists, 120, "the outside cluster's address file")
        common = ["attribute", "--dataset", "toy", "--teacher", teacher, "--max-new-tokens", "3", "--shard-size", "10",
                  "--actors", "1", "--num-cpus-per-actor", "1", "--wait"]
        res = _salient(store, *common, "--job-id", "embedded", env=env)
        assert res.returncode == 0, res.stderr[-3000:]
        nodes = json.loads(res.stdout.strip().splitlines()[-1])["actor_nodes"]
        assert nodes and not set(nodes) & set(outside), (nodes, outside)
        res = _salient(store, *common, "--job-id", "joined", "--ray-address", address, env=env)
        assert res.returncode == 0, res.stderr[-3000:]
        assert set(json.loads(res.stdout.strip().splitlines()[-1])["actor_nodes"]) <= set(outside)
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    assert catalog.get_job("embedded")["done_rows"] == catalog.get_job("joined")["done_rows"] == 20
