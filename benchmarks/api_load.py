"""Load on the REST service: N concurrent clients for a fixed time against a local `salient serve`.

    .venv/bin/python benchmarks/api_load.py                      # 32 clients, 60 s
    .venv/bin/python benchmarks/api_load.py --clients 8 --seconds 10

Sets up a fresh store (a tiny T5 teacher built from a config, a 20-row dataset), starts the service
on 127.0.0.1 with local Ray (tests/api/service_server.py), runs one job so the rationale tables have
rows, then each client loops over three requests:
  submit  POST /v1/jobs with an Idempotency-Key from its own pool of 4 keys, over 4 specs (k = 1..4):
          the first use of a key creates or finds the job, later ones replay it (the retry path);
  poll    GET /v1/jobs/{id} of the job it submitted;
  sql     POST /v1/sql with a small query (rows per job from `rationales`, jobs by status).
Prints requests/s, p50 / p99 latency per route and errors (any status but 200/202). Targets on
2 cores: 0 errors, p99 submit under 100 ms, p99 small SQL under 250 ms.

The load generator shares the 2 cores with the service, so its own cost counts: `--client aiohttp`
(the default) spends about 0.25 ms of CPU per request, `--client httpx` (one shared AsyncClient, as
the first version of this benchmark did) about 5 ms at 32 connections (1.6 ms with one), which then
starves the service it measures. The load is the same with either: closed-loop clients, no think
time, the same three requests.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "api")]

TOKEN = "bench"
SQL = ("SELECT job_id, count(*) AS n FROM rationales GROUP BY job_id",
       "SELECT status, count(*) AS n FROM jobs GROUP BY status")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def client_loop(request, i: int, teacher: str, stop_at: float, lat: dict, errors: dict,
                      failures: tuple) -> None:
    """One closed-loop client: submit, poll, sql, submit, ... back to back until `stop_at`."""
    n = 0
    job_id = None
    while time.monotonic() < stop_at:
        op = ("submit", "poll", "sql")[n % 3]
        if op == "poll" and job_id is None:
            op = "submit"
        t0 = time.perf_counter()
        try:
            if op == "submit":
                k = 1 + (i + n) % 4
                status, text = await request("POST", "/v1/jobs", headers={"Idempotency-Key": f"bench-{i}-{k}"},
                                             json={"dataset": "bench", "teacher": teacher, "k": k, "max_new_tokens": 3,
                                                   "shard_size": 10, "actors": 1})
                if status in (200, 202):
                    job_id = json.loads(text)["job_id"]
            elif op == "poll":
                status, text = await request("GET", f"/v1/jobs/{job_id}")
            else:
                status, text = await request("POST", "/v1/sql", json={"query": SQL[n % 2]})
            ok = status in (200, 202)
        except failures as exc:
            ok, status, text = False, repr(exc), ""
        lat[op].append(time.perf_counter() - t0)
        if not ok:
            errors[op] = errors.get(op, 0) + 1
            if errors[op] <= 3:
                print(f"error on {op}: {status} {text[:200]}", file=sys.stderr)
        n += 1


@asynccontextmanager
async def aiohttp_transport(url: str, clients: int):
    """request(method, path, **kw) -> (status, body text) over one aiohttp session of `clients` connections."""
    import aiohttp

    async with aiohttp.ClientSession(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                                     connector=aiohttp.TCPConnector(limit=clients),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def request(method: str, path: str, **kw) -> tuple[int, str]:
            async with session.request(method, path, **kw) as r:
                return r.status, await r.text()

        yield request, (aiohttp.ClientError, asyncio.TimeoutError)


@asynccontextmanager
async def httpx_transport(url: str, clients: int):
    """The same over one httpx.AsyncClient (the CLI's HTTP library)."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60,
                                 limits=limits) as c:
        async def request(method: str, path: str, **kw) -> tuple[int, str]:
            r = await c.request(method, path, **kw)
            return r.status_code, r.text

        yield request, (httpx.HTTPError,)


TRANSPORTS = {"aiohttp": aiohttp_transport, "httpx": httpx_transport}


def process_cpu_s(root_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) so far of `root_pid` ("service") and of all its descendants together
    ("tree": the service, its SQL worker, its Ray processes), from /proc; a process that exited is not counted."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick

    def under(pid: int) -> bool:
        while pid > 1:
            if pid == root_pid:
                return True
            pid = parent.get(pid, 0)
        return False

    return {"service": cpu.get(root_pid, 0.0), "tree": sum(c for pid, c in cpu.items() if under(pid))}


async def load(url: str, clients: int, seconds: float, teacher: str, client: str) -> tuple[dict, dict, float, float]:
    """Run the clients; returns (latencies by op, errors by op, elapsed s, the load generator's CPU s)."""
    lat: dict = {"submit": [], "poll": [], "sql": []}
    errors: dict = {}
    async with TRANSPORTS[client](url, clients) as (request, failures):
        t0, cpu0 = time.monotonic(), time.process_time()
        await asyncio.gather(*(client_loop(request, i, teacher, t0 + seconds, lat, errors, failures)
                               for i in range(clients)))
        elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    return lat, errors, elapsed, cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument("--seconds", type=float, default=60.0, help="load duration (default 60)")
    p.add_argument("--client", choices=sorted(TRANSPORTS), default="aiohttp",
                   help="HTTP library of the load generator (default aiohttp; see the module docstring)")
    args = p.parse_args()
    if args.client == "aiohttp":
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            p.error("--client aiohttp needs aiohttp: pip install -e '.[bench]' (or pass --client httpx)")

    import httpx

    from service_server import ServiceProcess, build_teacher, follow_events, toy_rows, write_jsonl

    with tempfile.TemporaryDirectory(prefix="salient-api-load-") as tmp:
        root = Path(tmp)
        teacher = build_teacher(root / "t5")
        data = write_jsonl(root / "bench.jsonl", toy_rows(20))
        with ServiceProcess(root / "store", tokens=f"{TOKEN}:read+submit") as server:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
                with data.open("rb") as fh:
                    c.post("/v1/datasets", data={"name": "bench", "split": "test"},
                           files={"file": (data.name, fh)}).raise_for_status()
                job = c.post("/v1/jobs", json={"dataset": "bench", "teacher": teacher, "k": 1, "max_new_tokens": 3,
                                               "shard_size": 10, "actors": 1}).json()
                assert follow_events(c, job["job_id"])[-1]["status"] == "succeeded"
            load1, before = os.getloadavg()[0], process_cpu_s(server.proc.pid)
            lat, errors, elapsed, cpu = asyncio.run(load(server.url, args.clients, args.seconds, teacher, args.client))
            load2, after = os.getloadavg()[0], process_cpu_s(server.proc.pid)
    total = sum(len(v) for v in lat.values())
    per = 1000 / max(total, 1)
    print(f"\n{args.clients} clients ({args.client}), {elapsed:.1f} s: {total} requests, {total / elapsed:.1f} "
          f"requests/s, {sum(errors.values())} errors")
    print(f"CPU per request: load generator {cpu * per:.2f} ms, service process "
          f"{(after['service'] - before['service']) * per:.2f} ms, service with its SQL worker and Ray "
          f"{(after['tree'] - before['tree']) * per:.2f} ms; 1-minute load average {load1:.1f} at the start, "
          f"{load2:.1f} at the end ({os.cpu_count()} CPUs)\n")
    print("| route | requests | req/s | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    names = {"submit": "POST /v1/jobs (Idempotency-Key)", "poll": "GET /v1/jobs/{id}", "sql": "POST /v1/sql (small)"}
    for op, values in lat.items():
        if values:
            print(f"| {names[op]} | {len(values)} | {len(values) / elapsed:.1f} | {statistics.median(values) * 1000:.1f} "
                  f"| {percentile(values, 0.99) * 1000:.1f} | {errors.get(op, 0)} |")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
