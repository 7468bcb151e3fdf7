"""A job over two Ray nodes on this machine (two raylets, `ray start --head` + `ray start --address`).

The job runs as a user runs one against an existing cluster: `RAY_ADDRESS=... salient attribute ...
--wait` in its own process. (A pytest process that was already the driver of another Ray session,
test_jobs.py's local cluster, sees its new actors destroyed right after creation: "all references to
the actor were removed", seen with ray 2.60; a fresh driver process has no such state.)

Each node offers one `salient_slot`; a job whose actors each need one slot gets one actor per node
(asserted on their node ids), and its rows equal a one-node run (both actors pinned to the head).
The processes get the environment docker-compose.yml gives their services (read from the file,
tests/deploy/compose_stack.py): both nodes the `ray-head` service's, the driver the `api` service's.
So Ray token auth is on (RAY_AUTH_MODE=token, one generated RAY_AUTH_TOKEN), the driver finds the
cluster through RAY_ADDRESS, and the store is SALIENT_STORE, the compose path re-rooted under a temp
directory (`<tmp>/data/salient`), not a --store flag. The nodes run on free ports and their own temp
dir, as `ray start --block` children in their own process group: teardown stops exactly those
processes (never a machine-wide `ray stop`, which would end other people's clusters).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from local_ports import free_ports, port_open
from test_jobs import make_rows, register

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from compose_stack import service_env  # noqa: E402

ray = pytest.importorskip("ray")
RAY_BIN = str(Path(sys.executable).with_name("ray"))


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the `ray start --block` process group (raylet, GCS, workers), SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            time.sleep(1)  # children of the group get the same signal; let them go
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def two_nodes(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    token = secrets.token_hex(32)
    base = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "SALIENT_STORE")}
    env = {**base, **service_env("ray-head", volume=tmp_path, given={"RAY_AUTH_TOKEN": token})}
    assert env["RAY_AUTH_MODE"] == "token"  # deploy keeps Ray token auth on; so does this test
    temp = tempfile.mkdtemp(prefix="rt2n-", dir="/tmp")  # short: Ray's socket paths have a length limit
    gcs, *agent = free_ports(7)
    common = ["--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    head = [RAY_BIN, "start", "--head", "--port", str(gcs), "--include-dashboard", "false", "--temp-dir", temp, "--resources", json.dumps({"salient_slot": 1, "head_node": 1}),
            "--dashboard-agent-listen-port", str(agent[0]), "--dashboard-agent-grpc-port", str(agent[1]),
            "--metrics-export-port", str(agent[2]), *common]
    worker = [RAY_BIN, "start", "--address", f"127.0.0.1:{gcs}", "--resources", json.dumps({"salient_slot": 1}),
              "--dashboard-agent-listen-port", str(agent[3]), "--dashboard-agent-grpc-port", str(agent[4]),
              "--metrics-export-port", str(agent[5]), *common]
    procs: list[subprocess.Popen] = []
    log = open(Path(temp) / "ray-start.log", "ab")
    try:
        procs.append(subprocess.Popen(head, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_for(lambda: port_open(gcs), 120, "the head node's GCS", temp, procs)
        procs.append(subprocess.Popen(worker, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        address = f"127.0.0.1:{gcs}"
        nodes: list[str] = []

        def two_alive() -> bool:
            nodes[:] = _alive_nodes(address, env)
            return len(nodes) == 2

        _wait_for(two_alive, 120, "the second node", temp, procs)
        driver = {**base, **service_env("api", volume=tmp_path, given={"RAY_ADDRESS": address, "RAY_AUTH_TOKEN": token},
                                        skip=("SALIENT_API_TOKENS",))}  # the driver is `salient attribute`, not the service
        yield {"address": address, "nodes": list(nodes), "env": driver, "store_root": Path(driver["SALIENT_STORE"])}
    finally:
        for p in reversed(procs):
            _stop(p)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _alive_nodes(address: str, env: dict) -> list[str]:
    """Node ids of the alive nodes, asked by a short-lived driver process."""
    code = ("import json, ray; ray.init(address=%r, log_to_driver=False); "
            "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive']])); ray.shutdown()" % address)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else []


def _attribute(env: dict, teacher: str, job_id: str, actors: int, resources: dict) -> dict:
    """`salient attribute ... --wait` in its own process against the cluster in RAY_ADDRESS, on the
    store in SALIENT_STORE (as the compose api service runs its driver); its summary."""
    cmd = [sys.executable, "-m", "api", "attribute", "--dataset", "toy", "--teacher", teacher,
           "--max-new-tokens", "3", "--shard-size", "25", "--actors", str(actors), "--num-cpus-per-actor", "1",
           "--resources", json.dumps(resources), "--job-id", job_id, "--wait"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"salient attribute exited {out.returncode}:\n{out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wait_for(check, timeout: float, what: str, temp: str, procs: list) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        if check():
            return
        time.sleep(0.5)
    tail = (Path(temp) / "ray-start.log").read_text(errors="replace")[-2000:]
    raise AssertionError(f"{what} did not come up within {timeout:.0f} s (or `ray start` exited):\n{tail}")


def test_job_spans_two_nodes_and_matches_a_one_node_run(two_nodes, tiny_teachers, make_examples):
    from storage import Catalog, Store

    store = Store.open(two_nodes["store_root"])
    rows = make_rows(200, make_examples)
    with Catalog.open(store) as cat:  # the drivers below are the catalog's writers while they run
        register(cat, rows)
    teacher = tiny_teachers["seq2seq"]
    both = _attribute(two_nodes["env"], teacher, "two-nodes", actors=2, resources={"salient_slot": 1})
    assert both["status"] == "succeeded"
    assert len(set(both["actor_nodes"])) == 2 and set(both["actor_nodes"]) == set(two_nodes["nodes"])

    one = _attribute(two_nodes["env"], teacher, "one-node", actors=1, resources={"head_node": 1})
    assert one["status"] == "succeeded" and len(set(one["actor_nodes"])) == 1
    with Catalog.open(store) as catalog:
        cols = "example_id, shard_index, teacher_output, rationale, scores, error, comprehensiveness"
        a = catalog.query(f"SELECT {cols} FROM rationales WHERE job_id = 'two-nodes' ORDER BY example_id")
        b = catalog.query(f"SELECT {cols} FROM rationales WHERE job_id = 'one-node' ORDER BY example_id")
        assert [r["example_id"] for r in a] == sorted(r["example_id"] for r in rows)
        assert len(a) == len(b) == 200
        for x, y in zip(a, b):
            assert (x["example_id"], x["shard_index"], x["teacher_output"], x["rationale"], x["error"]) == \
                   (y["example_id"], y["shard_index"], y["teacher_output"], y["rationale"], y["error"])
            np.testing.assert_allclose(x["scores"], y["scores"], rtol=1e-6, atol=0)
