"""The compose stack's `ray-head` and `api` services, run on this machine with the commands and the
environment docker-compose.yml gives them, and the `api` health check from the same file.

What it shows: a head started as compose starts it (no CPUs, no GPUs, Ray token auth on) and an API
started as compose starts it (`join-ray salient serve ...`: a zero-resource Ray node, then the service
as a Ray driver with RAY_ADDRESS, the token and SALIENT_STORE) make the API ready, and compose's own
health check command says so; the API's bearer tokens come from SALIENT_API_TOKENS.

Changed for one shared machine, and nothing else: ports are free ones instead of compose's fixed ones
(6379, 8000, the agents'), the head gets its own --temp-dir and 127.0.0.1, `ray` and `salient` are this
venv's (minimal Ray: so no dashboard and no Ray Client server, which the images' ray[default] has), and
the store volume is a temp directory. Slow (two Ray nodes start):
`pytest -m slow tests/deploy/test_compose_api_on_ray.py`. Every process is started in its own session
and stopped by its process group (never a machine-wide `ray stop`).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from compose_stack import REPO, load_compose, read_env_file, service_env
from local_ports import free_ports, port_open

pytestmark = pytest.mark.slow
VENV_BIN = Path(sys.executable).parent


def _session(sid: int) -> list[int]:
    """PIDs of the processes in session `sid` (Popen(start_new_session=True) makes the child's pid its
    session id; `ray start` moves its daemons to a process group of their own, but not out of the session)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # fields after "pid (comm)": state ppid pgrp session ...
            pids.append(int(stat.parent.name))
    return pids


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM every process of the session the test started, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _session(proc.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 15
        while _session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not _session(proc.pid):
            return


def _remap(argv: list[str], flags: dict[str, str | None]) -> list[str]:
    """argv with `--flag=value` replaced for each flag in `flags`, or dropped where the value is None
    (each flag must be there)."""
    out, seen = [], set()
    for arg in argv:
        name = arg.split("=", 1)[0]
        if name in flags:
            if flags[name] is not None:
                out.append(f"{name}={flags[name]}")
            seen.add(name)
        else:
            out.append(arg)
    assert seen == set(flags), f"compose command {argv} lacks {set(flags) - seen}"
    return out


def test_api_from_compose_joins_the_ray_head_and_its_health_check_passes(tmp_path):
    env_file = read_env_file()
    services = load_compose({**env_file, "RAY_AUTH_TOKEN": "x", "SALIENT_API_TOKENS": "x:read"})["services"]
    ray_token, api_token = secrets.token_hex(32), secrets.token_hex(16)
    gcs, api_port, *agent = free_ports(8)
    temp = tempfile.mkdtemp(prefix="rtapi-", dir="/tmp")  # short: Ray's socket paths have a length limit
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SALIENT_"))}
    base["PATH"] = f"{VENV_BIN}:{REPO / 'deploy' / 'docker'}:{base.get('PATH', '/usr/bin:/bin')}"
    base.setdefault("PYTHONPATH", str(REPO))  # the checkout under test (COMMON: PYTHONPATH=$PWD)

    # this venv has the minimal Ray (the images install ray[default]): no Ray Client server, no dashboard
    head_cmd = _remap(services["ray-head"]["command"], {
        "--port": str(gcs), "--ray-client-server-port": None, "--dashboard-host": None})
    head_cmd = [str(VENV_BIN / "ray"), *head_cmd[1:], "--include-dashboard=false", "--temp-dir", temp,
                "--node-ip-address=127.0.0.1", f"--dashboard-agent-listen-port={agent[0]}",
                f"--dashboard-agent-grpc-port={agent[1]}", f"--metrics-export-port={agent[2]}"]
    head_env = {**base, **service_env("ray-head", volume=tmp_path, given={"RAY_AUTH_TOKEN": ray_token})}

    api = services["api"]
    api_cmd = [api["entrypoint"][0].replace("join-ray", str(REPO / "deploy" / "docker" / "join-ray.sh")),
               *_remap_space(api["command"], "--port", str(api_port))]
    api_env = {**base, **service_env("api", volume=tmp_path, given={
        "RAY_ADDRESS": f"127.0.0.1:{gcs}", "RAY_AUTH_TOKEN": ray_token, "SALIENT_API_TOKENS": f"{api_token}:read"})}
    api_env["RAY_START_ARGS"] = (f"--node-ip-address=127.0.0.1 --dashboard-agent-listen-port={agent[3]} "
                                 f"--dashboard-agent-grpc-port={agent[4]} --metrics-export-port={agent[5]}")
    api_cmd = [str(VENV_BIN / "salient") if a == "salient" else a for a in api_cmd]
    health = [sys.executable if a == "python" else a.replace(":8000/", f":{api_port}/")
              for a in api["healthcheck"]["test"][1:]]  # drop "CMD"
    assert any(f":{api_port}/readyz" in a for a in health)

    procs: list[subprocess.Popen] = []
    log = open(Path(temp) / "stack.log", "ab")
    try:
        procs.append(subprocess.Popen(head_cmd, env=head_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        # compose starts the api once the head is healthy (depends_on: service_healthy); here, once its GCS listens
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and procs[0].poll() is None and not port_open(gcs):
            time.sleep(0.5)
        assert port_open(gcs), ("the Ray head's GCS never listened:\n"
                                 + (Path(temp) / "stack.log").read_text(errors="replace")[-4000:])
        procs.append(subprocess.Popen(api_cmd, env=api_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                      cwd=tmp_path))
        deadline, ready = time.monotonic() + 240, None
        while time.monotonic() < deadline and all(p.poll() is None for p in procs):
            try:
                ready = subprocess.run(health, capture_output=True, text=True, timeout=30)
            except subprocess.TimeoutExpired:  # a probe that hangs is a failed probe, as in compose: try again
                continue
            if ready.returncode == 0:
                break
            time.sleep(2)
        tail = (Path(temp) / "stack.log").read_text(errors="replace")[-4000:]
        assert ready is not None and ready.returncode == 0, f"the api never passed compose's health check:\n{tail}"

        import httpx

        url = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
        assert httpx.get(f"{url}/v1/jobs").status_code == 401                      # tokens are on
        ok = httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {api_token}"})
        assert ok.status_code == 200, ok.text
        store = Path(api_env["SALIENT_STORE"])
        # the service made the store where compose mounts it (catalog.duckdb waits for the first write)
        assert store == tmp_path / "data" / "salient" and store.is_dir()
    finally:
        for p in reversed(procs):
            _stop(p)
        log.close()
        assert not [pid for p in procs for pid in _session(p.pid)], "processes of the stack outlived the test"
        shutil.rmtree(temp, ignore_errors=True)


def _remap_space(argv: list[str], flag: str, value: str) -> list[str]:
    """argv with the value after `flag` (space-separated form) replaced."""
    i = argv.index(flag)
    return [*argv[:i + 1], value, *argv[i + 2:]]
