"""The REST service end to end: a real `salient serve` (uvicorn) on 127.0.0.1, real local Ray, a tiny T5 teacher.

One module-scoped service (tokens `readtok:read`, `subtok:read+submit`) serves the flow tests; the
crash test runs its own service on its own store, kills it with SIGKILL mid-job and starts it again.
Every job test checks DESIGN.md's invariant over HTTP: exactly one rationale row per input.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from service_server import ServiceProcess, build_teacher, follow_events, toy_rows, write_jsonl

REPO = Path(__file__).resolve().parents[2]
READ, SUBMIT = "readtok", "subtok"
TOKENS = f"{READ}:read,{SUBMIT}:read+submit"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return build_teacher(tmp_path_factory.mktemp("teacher") / "t5")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("service")
    with ServiceProcess(root / "store", tokens=TOKENS) as server:
        yield server


@pytest.fixture(scope="module")
def sub(service):
    with service.client(SUBMIT) as c:
        yield c


def upload(client, tmp_path, name: str, rows: list[dict], **form):
    path = write_jsonl(tmp_path / f"{name}.jsonl", rows)
    with path.open("rb") as fh:
        return client.post("/v1/datasets", data={"name": name, "split": "test", **form},
                           files={"file": (path.name, fh, "application/jsonl")})


def spec(dataset: str, teacher: str, **kw) -> dict:
    return {"dataset": dataset, "teacher": teacher, "k": 3, "max_new_tokens": 3, "shard_size": 10, "actors": 1,
            "num_cpus_per_actor": 1, **kw}


def sql(client, query: str) -> dict:
    resp = client.post("/v1/sql", json={"query": query})
    assert resp.status_code == 200, resp.text
    return resp.json()


def assert_one_row_per_input(client, job_id: str, rows: list[dict]) -> None:
    got = sql(client, f"SELECT example_id FROM rationales WHERE job_id = '{job_id}' ORDER BY example_id")
    ids = [r[0] for r in got["rows"]]
    assert len(ids) == len(rows), f"{len(ids)} rationale rows for {len(rows)} inputs"
    assert ids == sorted(r["id"] for r in rows)


def test_upload_submit_events_sql_and_view(service, sub, teacher, tmp_path):
    rows = toy_rows(40)
    resp = upload(sub, tmp_path, "toy", rows)
    assert resp.status_code == 201, resp.text
    assert [(r["name"], r["split"], r["rows"], r["status"]) for r in resp.json()] == [("toy", "test", 40, "added")]
    again = upload(sub, tmp_path, "toy", rows)
    assert again.status_code == 200 and again.json()[0]["status"] == "unchanged"
    assert [d["name"] for d in sub.get("/v1/datasets").json()] == ["toy"]
    detail = sub.get("/v1/datasets/toy").json()
    assert {"example_id", "input", "target"} <= {c["name"] for c in detail["versions"][0]["columns"]}

    key = str(uuid.uuid4())
    created = sub.post("/v1/jobs", json=spec("toy", teacher), headers={"Idempotency-Key": key})
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]
    assert created.headers["Location"] == f"/v1/jobs/{job_id}"

    events = follow_events(sub, job_id)
    assert events[-1]["status"] == "succeeded", events[-1]
    done = [e["done_rows"] for e in events]
    assert done == sorted(done) and done[-1] == 40
    job = sub.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["total_rows"], job["done_rows"], job["shards_done"], job["shards_total"]) == \
        ("succeeded", 40, 40, 4, 4)
    assert [s["index"] for s in job["shards"]] == [0, 1, 2, 3] and job["seconds"] > 0
    assert_one_row_per_input(sub, job_id, rows)

    # the same Idempotency-Key and body: the same job, no new one; a different body: 409
    replay = sub.post("/v1/jobs", json=spec("toy", teacher), headers={"Idempotency-Key": key})
    assert replay.status_code == 200 and replay.json()["job_id"] == job_id
    clash = sub.post("/v1/jobs", json=spec("toy", teacher, k=4), headers={"Idempotency-Key": key})
    assert clash.status_code == 409 and key in clash.json()["detail"]
    # a new key whose body names the same job gets that job, and is bound to it: a different body is 409
    other = str(uuid.uuid4())
    found = sub.post("/v1/jobs", json=spec("toy", teacher), headers={"Idempotency-Key": other})
    assert found.status_code == 200 and found.json()["job_id"] == job_id
    clash = sub.post("/v1/jobs", json=spec("toy", teacher, k=4), headers={"Idempotency-Key": other})
    assert clash.status_code == 409 and other in clash.json()["detail"]
    assert [j["job_id"] for j in sub.get("/v1/jobs").json()["items"]] == [job_id]

    # SQL formats
    csv_text = sub.post("/v1/sql?format=csv", json={"query": "SELECT count(*) AS n FROM rationales"}).text
    assert csv_text.splitlines() == ["n", "40"]
    import pyarrow as pa

    arrow = sub.post("/v1/sql", json={"query": "SELECT example_id, scores FROM rationales", "format": "arrow"})
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.num_rows == 40 and table.column_names == ["example_id", "scores"]

    # the viewer: JSON and HTML mark the same rationale words
    row = sub.get(f"/v1/rationales/toy/{rows[5]['id']}").json()
    assert len(row["rationale"]) == 3 and len(row["rationale_units"]) == 3
    html = sub.get(f"/v1/rationales/toy/{rows[5]['id']}/view")
    assert html.headers["content-type"].startswith("text/html")
    marked = re.findall(r'<mark class="rationale"><span[^>]*>([^<]*)</span></mark>', html.text)
    assert marked == row["rationale"]
    assert row["teacher_output"] is not None and f"{row['target_text']}" in html.text
    assert "comprehensiveness" in html.text and "<script" not in html.text and "http" not in html.text.split("<body>")[0]
    page = sub.get(f"/v1/jobs/{job_id}/view").text
    assert page.count('class="heat"') == 12 and "mean comprehensiveness" in page

    metrics = sub.get("/metrics").text
    assert 'salient_jobs{status="succeeded"} 1.0' in metrics
    assert "salient_rows_attributed 40.0" in metrics
    assert "salient_shard_commit_seconds_count 4.0" in metrics
    assert 'salient_http_request_seconds_count{method="POST",route="/v1/sql",status="200"}' in metrics


def test_auth_401_and_403(service):
    with service.client() as anon:
        r = anon.get("/v1/jobs")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    with service.client("not-a-token") as wrong:
        assert wrong.get("/v1/jobs").status_code == 401
    with service.client(READ) as reader:
        assert reader.get("/v1/jobs").status_code == 200
        r = reader.post("/v1/jobs", json={"dataset": "toy", "teacher": "x"})
        assert r.status_code == 403 and "submit" in r.json()["detail"]
        assert reader.post("/v1/sql", json={"query": "SELECT 1"}).status_code == 200
    with service.client() as anon:
        assert anon.get("/healthz").status_code == 200


def test_malformed_upload_names_the_line_and_changes_nothing(service, sub, tmp_path):
    before = sub.get("/v1/datasets?all=true").json()
    files_before = sorted(p.relative_to(service.store) for p in service.store.rglob("*") if p.is_file()
                          and "datasets" in p.parts)
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"input": "a cat"}\n{"input": "a dog"}\n{"input": "the mat"\n{"input": "x"}\n')
    with bad.open("rb") as fh:
        r = sub.post("/v1/datasets", data={"name": "broken"}, files={"file": ("broken.jsonl", fh)})
    assert r.status_code == 422, r.text
    assert "broken.jsonl:3" in r.json()["detail"]
    assert sub.get("/v1/datasets?all=true").json() == before
    assert sorted(p.relative_to(service.store) for p in service.store.rglob("*") if p.is_file()
                  and "datasets" in p.parts) == files_before
    # an attribute lookup in an ingest template is refused too
    with bad.open("rb") as fh:
        r = sub.post("/v1/datasets", data={"name": "t2", "input_template": "{input.__class__}"},
                     files={"file": ("x.jsonl", fh)})
    assert r.status_code == 422 and "template" in r.json()["detail"] and "__class__" in r.json()["detail"]


def test_upload_over_the_size_limit_is_413(tmp_path):
    with ServiceProcess(tmp_path / "store", tokens=TOKENS, extra=["--max-upload-bytes", "1000"]) as server, \
            server.client(SUBMIT) as c:
        r = upload(c, tmp_path, "big", toy_rows(100))
        assert r.status_code == 413 and "max_upload_bytes" in r.json()["detail"]
        assert c.get("/v1/datasets").json() == []


def test_bad_spec_422_names_the_field(sub, teacher):
    r = sub.post("/v1/jobs", json=spec("toy", teacher, k=0))
    assert r.status_code == 422
    assert [e["loc"][-1] for e in r.json()["detail"]] == ["k"]  # ["body", "k"] (or ["body", "engine", "k"])
    r = sub.post("/v1/jobs", json=spec("toy", teacher, bogus=1))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "bogus"
    r = sub.post("/v1/jobs", json=spec("toy", teacher, method="nope"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "method"
    r = sub.post("/v1/jobs", json=spec("no_such_dataset", teacher))
    assert r.status_code == 422 and "no_such_dataset" in r.json()["detail"]


def test_template_with_attribute_lookup_is_refused(sub, teacher):
    for template in ("{input.__class__}", "{input} {input.__init__.__globals__}", "{input[0]}", "{input!r}"):
        r = sub.post("/v1/jobs", json=spec("toy", teacher, template=template))
        assert r.status_code == 422, (template, r.text)
        assert "template" in json.dumps(r.json()["detail"]), r.text
    assert sub.get("/v1/jobs?status=queued").json()["items"] == []


def test_job_pages_follow_the_cursor(sub):
    r = sub.get("/v1/jobs?limit=1")
    assert r.status_code == 200 and len(r.json()["items"]) <= 1
    assert sub.get("/v1/jobs?after=nope").status_code == 422
    assert sub.get("/v1/jobs?status=bogus").status_code == 422


def _in_other_process(store, statement: str) -> None:
    """Run `statement` with `cat` (a Catalog of `store`) in a new Python process on this checkout."""
    code = f"import sys; from storage import Catalog, Store; cat = Catalog.open(Store.open(sys.argv[1])); {statement}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code, str(store)], check=True, env=env, timeout=120)


def test_a_job_changed_by_another_process_is_seen_on_the_next_request(service, sub):
    """The service answers reads from its catalog read cache; a commit by another process (a CLI, a job
    driver) is seen by the next request, on GET /v1/jobs/{id}, GET /v1/jobs and POST /v1/sql alike."""
    job_id = f"elsewhere-{uuid.uuid4().hex[:8]}"  # its spec is no JobSpec: the dispatcher leaves it alone
    _in_other_process(service.store, f"cat.create_job({job_id!r}, dataset='elsewhere', split='test', "
                                     "spec={'kind': 'bookkeeping'}, total_rows=20, shards_total=2)")
    for _ in range(3):  # the first read fills the cache, the next ones are answered from it
        assert sub.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    steps = (("cat.mark_running(sys.argv[2])", "running", 0),
             # a real (empty) shard file: the store stays undamaged for the module's later tests
             ("from storage import RATIONALE_SCHEMA, write_parquet_atomic; "
              "write_parquet_atomic(RATIONALE_SCHEMA.empty_table(), cat.store.root / 'rationales' / (sys.argv[2] + '-s0.parquet')); "
              "cat.commit_shard(sys.argv[2], index=0, path='rationales/' + sys.argv[2] + '-s0.parquet', rows=10, "
              "error_rows=0, bytes_=1)", "running", 10),
             ("cat.mark_failed(sys.argv[2], 'stopped by another process')", "failed", 10))
    for statement, status, done in steps:
        code = statement.replace("sys.argv[2]", repr(job_id))
        _in_other_process(service.store, code)
        job = sub.get(f"/v1/jobs/{job_id}").json()
        assert (job["status"], job["done_rows"]) == (status, done), (code, job)
        listed = {j["job_id"]: j["status"] for j in sub.get("/v1/jobs?limit=500").json()["items"]}
        assert listed[job_id] == status
        assert sql(sub, f"SELECT status, done_rows FROM jobs WHERE job_id = '{job_id}'")["rows"] == [[status, done]]
    assert sql(sub, f"SELECT count(*) FROM rationales WHERE job_id = '{job_id}'")["rows"] == [[0]]  # its shard reads


def slow_spec(dataset: str, teacher: str) -> dict:
    """Integrated gradients with many steps: shards take long enough to act between them."""
    return spec(dataset, teacher, method="integrated_gradients", n_steps=64, max_in_flight_per_actor=1)


def test_cancel_mid_job_keeps_committed_shards(service, sub, teacher, tmp_path):
    rows = toy_rows(200, seed=1, words=20)
    assert upload(sub, tmp_path, "slow", rows).status_code == 201
    job_id = sub.post("/v1/jobs", json=slow_spec("slow", teacher)).json()["job_id"]
    cancelled = []

    def cancel_after_first_shard(event):
        if event["shards_done"] >= 1 and not cancelled:
            r = sub.post(f"/v1/jobs/{job_id}/cancel")
            assert r.status_code == 200, r.text
            cancelled.append(r.json()["status"])

    events = follow_events(sub, job_id, on_event=cancel_after_first_shard)
    assert cancelled == ["cancelling"]
    job = sub.get(f"/v1/jobs/{job_id}").json()
    assert events[-1]["status"] == job["status"] == "cancelled", job
    assert 1 <= job["shards_done"] < job["shards_total"] == 20
    files = sorted(p.name for p in service.store.glob(f"rationales/dataset=slow/job={job_id}/shard-*.parquet"))
    assert len(files) == job["shards_done"] == len(job["shards"])
    got = sql(sub, f"SELECT count(*), count(DISTINCT example_id) FROM rationales WHERE job_id = '{job_id}'")["rows"]
    assert got == [[job["done_rows"], job["done_rows"]]] and job["done_rows"] == 10 * job["shards_done"]
    assert sub.post(f"/v1/jobs/{job_id}/cancel").status_code == 409


def test_sigkill_mid_job_then_restart_resumes_to_one_row_per_input(teacher, tmp_path):
    store = tmp_path / "store"
    rows = toy_rows(120, seed=2, words=20)
    server = ServiceProcess(store, tokens=TOKENS).start()
    try:
        with server.client(SUBMIT) as c:
            assert upload(c, tmp_path, "crash", rows).status_code == 201
            job_id = c.post("/v1/jobs", json=slow_spec("crash", teacher)).json()["job_id"]
            deadline = time.monotonic() + 240
            while c.get(f"/v1/jobs/{job_id}").json()["shards_done"] < 2:
                assert time.monotonic() < deadline, "no shard committed in time"
                time.sleep(0.2)
        server.kill()
    finally:
        server.stop()
    with ServiceProcess(store, tokens=TOKENS) as again, again.client(SUBMIT) as c:
        job = c.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] in ("running", "succeeded") and job["shards_done"] >= 2
        events = follow_events(c, job_id)
        assert events[-1]["status"] == "succeeded", events[-1]
        job = c.get(f"/v1/jobs/{job_id}").json()
        assert (job["done_rows"], job["shards_done"]) == (120, 12)
        assert_one_row_per_input(c, job_id, rows)


def test_insecure_no_auth_only_on_loopback(tmp_path):
    import subprocess
    import sys

    from service_server import REPO

    r = subprocess.run([sys.executable, "-m", "api", "--store", str(tmp_path / "s"), "serve", "--host", "0.0.0.0",
                        "--insecure-no-auth"], capture_output=True, text=True, cwd=REPO, timeout=120,
                       env={**__import__("os").environ, "PYTHONPATH": str(REPO), "SALIENT_API_TOKENS": ""})
    assert r.returncode == 2 and "--insecure-no-auth is allowed only with --host 127.0.0.1" in r.stderr
    r = subprocess.run([sys.executable, "-m", "api", "--store", str(tmp_path / "s"), "serve"], capture_output=True,
                       text=True, cwd=REPO, timeout=120,
                       env={**__import__("os").environ, "PYTHONPATH": str(REPO), "SALIENT_API_TOKENS": ""})
    assert r.returncode == 2 and "SALIENT_API_TOKENS" in r.stderr


def test_openapi_property_run_finds_no_5xx(service, sub):
    """Schemathesis generates requests for every operation of /openapi.json; none may get a 5xx."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    assert sub.get("/openapi.json").status_code == 200 and sub.get("/docs").status_code == 200
    st = Path(sys.executable).with_name("schemathesis")
    cmd = [str(st), "run", f"{service.url}/openapi.json", "--checks", "not_a_server_error",
           "--max-examples", "15", "--seed", "1", "--request-timeout", "30", "--workers", "1",  # 2 workers hit a CPython ast.parse thread bug inside hypothesis
           "-H", f"Authorization: Bearer {SUBMIT}", "--suppress-health-check", "all"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    tested = re.search(r"(\d+) passed", r.stdout)
    assert tested and int(tested.group(1)) >= 15, r.stdout[-3000:]  # every operation was exercised
    print(r.stdout[-1500:])


def salient(service, *args: str, token: str = SUBMIT, stdin: str | None = None):
    import os
    import subprocess
    import sys

    from service_server import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO), "SALIENT_API": service.url, "SALIENT_API_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "api", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=300, input=stdin)


def test_progress_bar_ends_at_the_shard_total_when_one_event_reports_several_shards(capsys):
    """The events stream reports a state when its poll sees a change, so one event can carry several newly
    committed shards (0, then 3, then 4 of 4 here). The bar steps once per shard and ends at 4/4, not 7/4."""
    from api.client import follow_with_progress
    from api.commands.attribute import _ProgressBar

    def state(done, status="running"):
        return {"job_id": "j", "status": status, "shards_done": done, "shards_total": 4, "done_rows": 5 * done,
                "total_rows": 20, "error_rows": 0}

    steps = []

    class Recorded:  # the real bar, with each step's shard count noted
        def __init__(self):
            self.bar = _ProgressBar()

        def __call__(self, event):
            steps.append(event["shards_done"])
            self.bar(event)

        def close(self):
            self.bar.close()

    record = Recorded()
    last = follow_with_progress(iter([state(0), state(3), state(4, "succeeded")]), state(0, "queued"), record)
    assert last["status"] == "succeeded" and steps == [1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "4/4" in err and not re.search(r"\b[5-9]/4\b", err), err
    # a resumed job (2 of 4 already committed when submitted) starts its bar at 2 and also ends at 4/4
    steps.clear()
    follow_with_progress(iter([state(4, "succeeded")]), state(2), record)
    assert steps == [3, 4]
    err = capsys.readouterr().err
    assert "4/4" in err and not re.search(r"\b[5-9]/4\b", err), err


def test_cli_talks_to_the_service_with_api(service, sub, teacher, tmp_path):
    """`salient --api URL` (here $SALIENT_API): the same commands and tables, over HTTP."""
    rows = toy_rows(20, seed=7)
    path = write_jsonl(tmp_path / "cli.jsonl", rows)
    r = salient(service, "datasets", "add", "cli", str(path), "--split", "test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split() == ["name", "split", "version", "rows", "status", "notes", "path"]
    assert re.match(r"cli\s+test\s+\w{12}\s+20\s+added", r.stdout.splitlines()[2]), r.stdout
    r = salient(service, "datasets", "ls")
    assert r.returncode == 0 and re.search(r"^cli\s+test\s+\w+\s+20\s+jsonl\s+True\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$",
                                           r.stdout, re.M), r.stdout

    r = salient(service, "attribute", "--dataset", "cli", "--teacher", teacher, "--k", "2", "--max-new-tokens", "3",
                "--shard-size", "5", "--actors", "1", "--wait")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["done_rows"], summary["shards_done"]) == ("succeeded", 20, 4)
    assert "4/4" in r.stderr  # the progress bar, fed by the events stream
    job_id = summary["job_id"]

    r = salient(service, "jobs", "ls", "--status", "succeeded")
    assert r.returncode == 0 and re.search(rf"^{job_id}\s+cli\s+succeeded\s+20\s+20\s+0\s+4\s+4", r.stdout, re.M), r.stdout
    r = salient(service, "jobs", "show", job_id)
    assert r.returncode == 0 and f'"job_id": "{job_id}"' in r.stdout and re.search(r"^3\s+5\s+0\s+\d+\s+rationales/", r.stdout, re.M)
    r = salient(service, "sql", f"SELECT count(*) AS n, count(DISTINCT example_id) AS d FROM rationales "
                                f"WHERE job_id = '{job_id}'", "--format", "csv")
    assert r.returncode == 0 and r.stdout.splitlines() == ["n,d", "20,20"], r.stdout + r.stderr
    r = salient(service, "sql", "DELETE FROM jobs")
    assert r.returncode == 2 and "refused" in r.stderr
    r = salient(service, "models", "ls")
    assert r.returncode == 0 and r.stdout.split()[:3] == ["run_id", "dataset", "student"]
    r = salient(service, "attribute", "--dataset", "cli", "--teacher", teacher, token=READ)
    assert r.returncode == 2 and "403" in r.stderr and "submit" in r.stderr
    r = salient(service, "catalog", "rebuild")
    assert r.returncode == 2 and "local store only" in r.stderr


def test_retrain_runs_in_its_own_process_and_is_idempotent_per_snapshot(service, sub):
    """Needs a job's shards on `toy` (test_upload_submit_events_sql_and_view ran first in this module)."""
    body = {"dataset": "toy", "config": {"student": "tiny", "train_split": "test", "test_split": None, "steps": 4,
                                         "eval_every": 2, "progress": False}}

    def finish(resp) -> dict:
        assert resp.status_code in (200, 202), resp.text
        rid = resp.json()["retrain_id"]
        deadline = time.monotonic() + 300
        while (state := sub.get(f"/v1/retrain/{rid}").json())["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        return state

    first = finish(sub.post("/v1/retrain", json=body))
    assert first["status"] == "trained", first
    models = sub.get("/v1/models?dataset=toy").json()
    assert [m["run_id"] for m in models] == [first["run_id"]] and models[0]["current"] is True
    second = finish(sub.post("/v1/retrain", json=body))
    assert second["status"] == "skipped" and first["run_id"] in second["reason"]
    bad = sub.post("/v1/retrain", json={"dataset": "toy", "config": {"stepz": 3}})
    assert bad.status_code == 422 and "stepz" in bad.json()["detail"]


def test_cli_with_api_prints_what_the_local_command_prints(service, sub, teacher, tmp_path):
    """One set of commands, two transports: the local commands read the store the service writes (shared store)."""
    import os
    import subprocess
    import sys

    from service_server import REPO

    rows = toy_rows(12, seed=9)
    assert upload(sub, tmp_path, "same", rows).status_code == 201
    job_id = sub.post("/v1/jobs", json=spec("same", teacher)).json()["job_id"]
    assert follow_events(sub, job_id)[-1]["status"] == "succeeded"
    env = {k: v for k, v in os.environ.items() if k not in ("SALIENT_API", "SALIENT_API_TOKEN")}
    env["PYTHONPATH"] = str(REPO)
    for args in (["datasets", "ls"], ["jobs", "ls"], ["models", "ls"],
                 ["sql", f"SELECT example_id, rationale, rationale_text, teacher_correct FROM rationales "
                         f"WHERE job_id = '{job_id}' ORDER BY example_id"],
                 ["sql", "SELECT dataset, count(*) AS n FROM rationales GROUP BY dataset ORDER BY dataset", "--format", "json"]):
        remote = salient(service, *args)
        local = subprocess.run([sys.executable, "-m", "api", "--store", str(service.store), *args], capture_output=True,
                               text=True, cwd=REPO, env=env, timeout=300)
        assert remote.returncode == local.returncode == 0, (args, remote.stderr, local.stderr)
        assert remote.stdout == local.stdout, args
    r = salient(service, "jobs", "cancel", job_id)
    assert r.returncode == 2 and "already ended succeeded" in r.stderr
