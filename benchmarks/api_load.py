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
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "api")]

TOKEN = "bench"
SQL = ("SELECT job_id, count(*) AS n FROM rationales GROUP BY job_id",
       "SELECT status, count(*) AS n FROM jobs GROUP BY status")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def client_loop(c, i: int, teacher: str, stop_at: float, lat: dict, errors: dict) -> None:
    import httpx

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
                r = await c.post("/v1/jobs", headers={"Idempotency-Key": f"bench-{i}-{k}"},
                                 json={"dataset": "bench", "teacher": teacher, "k": k, "max_new_tokens": 3,
                                       "shard_size": 10, "actors": 1})
                if r.status_code in (200, 202):
                    job_id = r.json()["job_id"]
            elif op == "poll":
                r = await c.get(f"/v1/jobs/{job_id}")
            else:
                r = await c.post("/v1/sql", json={"query": SQL[n % 2]})
            ok = r.status_code in (200, 202)
        except httpx.HTTPError as exc:
            ok, r = False, exc
        lat[op].append(time.perf_counter() - t0)
        if not ok:
            errors[op] = errors.get(op, 0) + 1
            if errors[op] <= 3:
                print(f"error on {op}: {getattr(r, 'status_code', r)} {getattr(r, 'text', '')[:200]}", file=sys.stderr)
        n += 1


async def load(url: str, clients: int, seconds: float, teacher: str) -> tuple[dict, dict, float]:
    import httpx

    lat: dict = {"submit": [], "poll": [], "sql": []}
    errors: dict = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60,
                                 limits=limits) as c:
        t0 = time.monotonic()
        await asyncio.gather(*(client_loop(c, i, teacher, t0 + seconds, lat, errors) for i in range(clients)))
        elapsed = time.monotonic() - t0
    return lat, errors, elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument("--seconds", type=float, default=60.0, help="load duration (default 60)")
    args = p.parse_args()

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
            lat, errors, elapsed = asyncio.run(load(server.url, args.clients, args.seconds, teacher))
    total = sum(len(v) for v in lat.values())
    print(f"\n{args.clients} clients, {elapsed:.1f} s: {total} requests, {total / elapsed:.1f} requests/s, "
          f"{sum(errors.values())} errors\n")
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
