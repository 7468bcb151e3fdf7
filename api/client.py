"""The CLI's HTTP transport: `salient --api URL ...` (or $SALIENT_API) talks to `salient serve`.

    client = ServiceClient("http://127.0.0.1:8000", token="tokB")
    client.request("GET", "/v1/jobs", params={"status": "running"}).json()
    for event in client.events("job-cqa-1a2b3c4d5e6f"): ...        # server-sent events, until terminal

`remote_command(args)` maps a parsed `salient` command to its remote twin below: datasets add|ls,
attribute, jobs ls|show|cancel, sql, models ls. Each prints what the local command prints (the same
`print_rows` tables, the same exit codes); other commands refuse `--api` with a message. The token
comes from $SALIENT_API_TOKEN.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Iterator

import httpx

from api.commands.common import print_rows

TOKEN_ENV = "SALIENT_API_TOKEN"
TERMINAL = ("succeeded", "failed", "cancelled")


class ServiceError(ValueError):
    """The service answered 4xx/5xx; the message is its `detail`."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status


class ServiceClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ConnectionError(f"cannot reach the service at {self.url} ({exc}): start `salient serve` "
                                  "or drop --api / unset SALIENT_API to use the local store") from None
        if resp.status_code >= 400:
            raise ServiceError(resp.status_code, _detail(resp))
        return resp

    def events(self, job_id: str) -> Iterator[dict]:
        """The job's `event: job` payloads from GET /v1/jobs/{id}/events until the stream ends."""
        with self.http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(60.0, read=None)) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise ServiceError(resp.status_code, _detail(resp))
            data = []
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    yield json.loads("\n".join(data))
                    data = []

    def close(self) -> None:
        self.http.close()


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', []) if x != 'body')}: {e.get('msg')}" for e in detail)
    return f"service answered {resp.status_code}: {detail}"


def _dates(rows: list[dict]) -> list[dict]:
    """ISO timestamps of *_at columns back to datetimes, so tables print as the local commands print them."""
    for r in rows:
        for k, v in r.items():
            if k.endswith("_at") and isinstance(v, str):
                try:
                    r[k] = dt.datetime.fromisoformat(v)
                except ValueError:
                    pass
    return rows


def client_for(args) -> ServiceClient:
    return ServiceClient(args.api, token=os.environ.get(TOKEN_ENV))


# ---------------------------------------------------------------------------- remote commands
def datasets_add(args) -> int:
    path = Path(args.path)
    if not path.is_file():
        raise ValueError(f"{path}: --api uploads one JSONL/CSV/Parquet file; ingest a DSS dataset directory "
                         "locally (drop --api) or on the service's machine")
    from api.commands.datasets import _unescape

    form = {k: v for k, v in dict(name=args.name, format=args.format, split=args.split, id_field=args.id_field,
                                  input_field=args.input_field, input_template=_unescape(args.input_template),
                                  target_field=args.target_field, choices_field=args.choices_field).items()
            if v is not None}
    with path.open("rb") as fh:
        rows = client_for(args).request("POST", "/v1/datasets", data=form, files={"file": (path.name, fh)},
                                        timeout=None).json()
    print_rows(rows, columns=["name", "split", "version", "rows", "status", "notes", "path"])
    if all(r["status"] == "unchanged" for r in rows):
        print("nothing to do: this content is already the active version")
    return 0


def datasets_ls(args) -> int:
    rows = _dates(client_for(args).request("GET", "/v1/datasets", params={"all": str(args.all).lower()}).json())
    if not rows:
        print("no datasets yet: add one with `salient datasets add NAME PATH` (see --help)")
        return 0
    print_rows(rows, columns=["name", "split", "version", "rows", "format", "active", "created_at"])
    return 0


def jobs_ls(args) -> int:
    client, rows, after = client_for(args), [], None
    while True:
        params = {"limit": 500, **({"status": args.status} if args.status else {}), **({"after": after} if after else {})}
        page = client.request("GET", "/v1/jobs", params=params).json()
        rows += page["items"]
        after = page["next"]
        if not after:
            break
    print_rows(_dates(rows), columns=["job_id", "dataset", "split", "status", "done_rows", "total_rows", "error_rows",
                                      "shards_done", "shards_total", "message"])
    return 0


def jobs_show(args) -> int:
    job = client_for(args).request("GET", f"/v1/jobs/{args.job_id}").json()
    shards = _dates(job.pop("shards"))
    print(json.dumps(job, indent=2, default=str))
    print_rows(shards, columns=["index", "rows", "error_rows", "bytes", "path"])
    return 0


def jobs_cancel(args) -> int:
    job = client_for(args).request("POST", f"/v1/jobs/{args.job_id}/cancel").json()
    note = ("the job's driver stops at its next poll and marks it cancelled; committed shards stay"
            if job["status"] == "cancelling" else job.get("message") or "")
    print(json.dumps({"job_id": job["job_id"], "status": job["status"], "note": note}))
    return 0


def follow_with_progress(events, job: dict, bar) -> dict:
    """Feed a job's state events to a shard progress bar; return the last state. One poll of the events stream
    can see several shards committed at once: each gets its own bar step, numbered as it was committed, so the
    bar ends at shards_total however the updates were grouped."""
    last, shards_seen = job, job["shards_done"]
    try:
        for event in events:
            last = event
            for done in range(shards_seen + 1, event["shards_done"] + 1):
                bar({"kind": "shard", "job_id": event["job_id"], "shards_done": done,
                     "shards_total": event["shards_total"], "rows_done": event["done_rows"],
                     "total_rows": event["total_rows"], "error_rows": event["error_rows"]})
            shards_seen = max(shards_seen, event["shards_done"])
    finally:
        bar.close()
    return last


def attribute(args) -> int:
    from api.commands.attribute import _ProgressBar, spec_from_args

    if args.resume:
        raise ValueError("--resume is local-only: with --api, POST the same spec again (the job id is derived "
                         "from it) and the service resumes the job")
    spec, job_id = spec_from_args(args, None)
    if job_id:
        raise ValueError("--job-id is local-only: the service derives the job id from the spec")
    client = client_for(args)
    resp = client.request("POST", "/v1/jobs", json=spec.model_dump(mode="json"),
                          headers={"Idempotency-Key": str(uuid.uuid4())})
    job = resp.json()
    if not args.wait:
        print(json.dumps({"job_id": job["job_id"], "status": job["status"], "location": resp.headers.get("Location")}))
        return 0
    last = follow_with_progress(client.events(job["job_id"]), job, _ProgressBar())
    if last["status"] != "succeeded":
        print(f"salient: job {last['status']}: {last.get('message') or ''}", file=sys.stderr)
        return 1
    print(json.dumps({k: last[k] for k in ("job_id", "status", "total_rows", "done_rows", "error_rows", "shards_total",
                                           "shards_done", "started_at", "finished_at")}, default=str))
    return 0


def sql(args) -> int:
    import pyarrow as pa

    query = sys.stdin.read() if args.query == "-" else args.query
    body = {"query": query, "limit": args.limit, "time_limit_s": args.time_limit, "format": "arrow"}
    try:
        resp = client_for(args).request("POST", "/v1/sql", json={k: v for k, v in body.items() if v is not None},
                                        timeout=None)
    except ServiceError as exc:
        print(f"salient: {exc}", file=sys.stderr)
        return 1 if exc.status == 408 else 2
    table = pa.ipc.open_stream(resp.content).read_all()
    print_rows([tuple(r.values()) for r in table.to_pylist()], columns=table.column_names, fmt=args.format)
    if resp.headers.get("X-Salient-Truncated") == "true":
        print(f"salient: truncated: showing the first {table.num_rows} rows; pass --limit N or add LIMIT/aggregation",
              file=sys.stderr)
    return 0


def models_ls(args) -> int:
    params = {"dataset": args.dataset} if args.dataset else {}
    rows = _dates(client_for(args).request("GET", "/v1/models", params=params).json())
    print_rows(rows, ["run_id", "dataset", "student", "status", "current", "val", "test", "baseline_test", "created_at"],
               fmt=args.format)
    return 0


REMOTE = {
    ("datasets", "add"): datasets_add, ("datasets", "ls"): datasets_ls,
    ("jobs", "ls"): jobs_ls, ("jobs", "show"): jobs_show, ("jobs", "cancel"): jobs_cancel,
    ("attribute", None): attribute, ("sql", None): sql, ("models", "ls"): models_ls,
}


def remote_command(args):
    """The remote twin of the parsed command; ValueError naming the ones that work with --api."""
    action = getattr(args, f"{args.command}_command", None)
    func = REMOTE.get((args.command, action))
    if func is None:
        name = " ".join(x for x in (args.command, action) if x)
        known = ", ".join(" ".join(x for x in k if x) for k in REMOTE)
        raise ValueError(f"`salient {name}` works on the local store only: drop --api (or unset SALIENT_API). "
                         f"With --api: {known}")
    return func
