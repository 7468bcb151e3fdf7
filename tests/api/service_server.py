"""A real `salient serve` on 127.0.0.1 for the service tests and benchmarks/api_load.py.

    with ServiceProcess(store, tokens="tokA:read,tokB:read+submit") as server:
        server.client("tokB").get("/v1/jobs")
    server.kill()      # SIGKILL the service (its local Ray cluster shares its fate)

Each server is a subprocess (`python -m api --store STORE serve --port FREE ...`) started in its own
session, with PYTHONPATH set to this checkout; it is stopped by its PID (SIGTERM, then SIGKILL of its
process group, which holds its Ray processes).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from local_ports import free_ports

REPO = Path(__file__).resolve().parents[2]
WORDS = "the a cat dog sat ran on under mat box red blue big small quickly slowly near far tree house".split()


def toy_rows(n: int, seed: int = 0, words: int = 8) -> list[dict]:
    """n JSONL-ready rows with unique ids over the tiny teacher's vocabulary."""
    import random

    rng = random.Random(seed)
    return [{"id": f"ex{i:04d}", "input": " ".join(rng.choice(WORDS) for _ in range(words + i % 5)),
             "target": rng.choice(["cat", "dog"])} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def build_teacher(path: Path) -> str:
    from attribution_worker.tiny import build_tiny_teacher

    if not (path / "config.json").exists():
        build_tiny_teacher(path, kind="seq2seq", texts=[" ".join(WORDS)], seed=1)
    return str(path)


class _PortTaken(RuntimeError):
    """uvicorn could not bind the port free_ports() picked: another process took it first."""


class ServiceProcess:
    def __init__(self, store: Path, *, tokens: str | None = None, insecure: bool = False, extra: list[str] = (),
                 log: Path | None = None, ray_cpus: int = 2):
        self.store, self.tokens, self.insecure = Path(store), tokens, insecure
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra, self.ray_cpus = list(extra), ray_cpus
        self.log = log or self.store.parent / f"service-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 120.0) -> "ServiceProcess":
        first = self.proc is None  # only a first start may move its port (see below)
        try:
            return self._start(ready_timeout)
        except _PortTaken:
            if not first:
                raise
            # free_ports() released the port and uvicorn binds it only after the lifespan's ray.init, which opens
            # ports of its own: on a busy machine another process can take it in that gap. A first start moves
            # to another port once; a restart keeps its URL (the tests hold it), so it raises as before.
            self._reap_group()  # the failed start's Ray processes, before self.proc is replaced
            self.port = free_ports(1)[0]
            self.url = f"http://127.0.0.1:{self.port}"
            return self._start(ready_timeout)

    def _start(self, ready_timeout: float) -> "ServiceProcess":
        env = {**os.environ, "PYTHONPATH": str(REPO), "SALIENT_LOG_LEVEL": "warning"}
        env.pop("RAY_ADDRESS", None)
        env.pop("SALIENT_API", None)
        if self.tokens:
            env["SALIENT_API_TOKENS"] = self.tokens
        cmd = [sys.executable, "-m", "api", "--store", str(self.store), "serve", "--port", str(self.port),
               "--ray-num-cpus", str(self.ray_cpus), "--dispatcher-poll-s", "0.2", "--events-poll-s", "0.2",
               *self.extra]
        if self.insecure:
            cmd.append("--insecure-no-auth")
        self.store.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=str(REPO), start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-3000:]
                taken = f"{self.port}): address already in use" in tail
                raise (_PortTaken if taken else RuntimeError)(f"salient serve exited {self.proc.returncode}:\n{tail}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"salient serve not ready in {ready_timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def client(self, token: str | None = None, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the service process only (a crash); its Ray processes share its fate."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._reap_group()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reap_group()

    def _reap_group(self) -> None:
        """Ray processes the service started (same session/process group) that outlived it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "ServiceProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def follow_events(client: httpx.Client, job_id: str, timeout: float = 300.0, on_event=None) -> list[dict]:
    """Every `event: job` payload of the job's SSE stream until it ends (a terminal state)."""
    events, data = [], []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(timeout)) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                events.append(json.loads("\n".join(data)))
                data = []
                if on_event:
                    on_event(events[-1])
    return events
