"""The demo through the service: `salient demo --via-service` (what `make demo` runs).

    salient --store ./salient-data demo --via-service [--report PATH (default <store>/demo-report.html)]

Starts the REST service in this process (uvicorn in a thread, 127.0.0.1, a free port, no tokens)
and drives it over HTTP like any client, printing the time of each stage. The stages are api/demo.py's
(DemoConfig sets the sizes):
1. uploads the shared DSS split files (CQA, SVAMP, e-SNLI, ANLI r1) and the e-SNLI slice's JSON Lines
   files (one per split) with POST /v1/datasets;
2. fine-tunes the all-MiniLM-L6-v2 e-SNLI teacher (a library call, as in api/demo.py: there is no REST
   endpoint for training teachers);
3. submits the attribution job over the slice with POST /v1/jobs (an Idempotency-Key) and follows its events;
4. answers SQL with POST /v1/sql;
5. distils the student with the teacher's rationales and distribution next to its plain fine-tuned twin
   (the same call as api/demo.py's stage 5, on the service's catalog) and lists the registry with GET /v1/models;
then writes `<store>/demo-report.html`: sample saliency heatmaps and the faithfulness summary from the job
viewer (GET /v1/jobs/{id}/view), and the student table.
"""
from __future__ import annotations

import socket
import threading
import time
import uuid
from html import escape
from pathlib import Path
from typing import Callable

from api.demo import (DEMO_DATASET, DSS_DATASETS, DemoConfig, check_datasets_dir, fit_teacher, job_spec, say_part,
                      say_table, sql_queries, student_stage, write_slice)


class InProcessService:
    """The app under uvicorn in a daemon thread of this process; `.catalog` is the app's catalog."""

    def __init__(self, store: str):
        import uvicorn

        from api.app.core.config import ServiceSettings
        from api.app.main import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.app = create_app(ServiceSettings(store=store, insecure_no_auth=True, host="127.0.0.1", port=port,
                                              dispatcher_poll_s=0.2, events_poll_s=0.3))
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning"))
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.run, name="salient-demo-service", daemon=True)

    def __enter__(self) -> "InProcessService":
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process service did not start (see the log above)")
            time.sleep(0.1)
        return self

    @property
    def catalog(self):
        return self.app.state.catalog

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(60)


def run_service_demo(store: str, *, datasets_dir: Path, cfg: DemoConfig | None = None,
                     report: Path | None = None, say: Callable[[str], None] = print) -> dict:
    """The demo over HTTP; writes the HTML report to `report` (default: demo-report.html in the store's local
    directory, so a run from a checkout leaves nothing in the working tree)."""
    from api.client import ServiceClient

    cfg = cfg or DemoConfig()
    check_datasets_dir(datasets_dir)
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    def stage(name: str, t0: float) -> None:
        times[name] = round(time.perf_counter() - t0, 1)
        say(f"   ({times[name]} s)")

    say("== starting the service in this process")
    t0 = time.perf_counter()
    with InProcessService(store) as service:
        client = ServiceClient(service.url)
        say(f"   {service.url} (OpenAPI at {service.url}/docs)")
        stage("start service", t0)

        def upload(name: str, file: Path, **form) -> None:
            with file.open("rb") as fh:
                parts = client.request("POST", "/v1/datasets", data={"name": name, **form},
                                       files={"file": (file.name, fh)}, timeout=None).json()
            for part in parts:
                say_part(say, name, part["split"], part["rows"], part["status"])

        say("== 1/5 upload the shared datasets and the e-SNLI slice the demo distils (POST /v1/datasets)")
        t0 = time.perf_counter()
        for name, folder, fmt in DSS_DATASETS:
            for file in sorted((datasets_dir / folder).glob(f"{folder}_*.json")):
                upload(name, file, format=fmt)
        catalog = service.catalog
        files, teacher_rows = write_slice(catalog, cfg)
        for split, file in files.items():
            upload(DEMO_DATASET, file, format="jsonl", split=split)
        stage("1 upload", t0)

        say("== 2/5 fine-tune the teacher (all-MiniLM-L6-v2 from its package directory, no download)")
        t0 = time.perf_counter()
        teacher_dir = fit_teacher(catalog, teacher_rows, cfg, say)
        stage("2 teacher", t0)

        spec = job_spec(teacher_dir, cfg)
        say(f"== 3/5 attribution job over REST (POST /v1/jobs, GET /v1/jobs/{{id}}/events): every split of "
            f"{DEMO_DATASET}, saliency, k={cfg.k}")
        t0 = time.perf_counter()
        resp = client.request("POST", "/v1/jobs", json=spec, headers={"Idempotency-Key": str(uuid.uuid4())})
        job_id = resp.json()["job_id"]
        say(f"   {resp.status_code} {resp.headers.get('Location')}")
        last = resp.json()
        for event in client.events(job_id):
            last = event
            say(f"   {event['status']}: {event['shards_done']}/{event['shards_total']} shards, "
                f"{event['done_rows']}/{event['total_rows']} rows")
        if last["status"] != "succeeded":
            raise RuntimeError(f"job {job_id} ended {last['status']}: {last.get('message')}")
        stage("3 attribute", t0)

        say("== 4/5 SQL over REST (POST /v1/sql)")
        t0 = time.perf_counter()
        for title, sql in sql_queries(job_id).items():
            result = client.request("POST", "/v1/sql", json={"query": sql}).json()
            say_table(say, f"{title} ({result['elapsed_ms']} ms)", sql, result["columns"], result["rows"])
        stage("4 sql", t0)

        say("== 5/5 distil a pretrained student with and without the teacher's signal (student_trainer.compare)")
        t0 = time.perf_counter()
        run = student_stage(catalog, cfg, job_id, say)
        models = client.request("GET", "/v1/models", params={"dataset": run["dataset"]}).json()
        say(f"   run {run['run_id']} (promoted: {run['promoted']}); GET /v1/models lists {len(models)} run(s)")
        stage("5 student", t0)

        job_view = client.request("GET", f"/v1/jobs/{job_id}/view").text
        client.close()
    times["total"] = round(time.perf_counter() - t_all, 1)
    report = Path(report) if report is not None else catalog.store.local_dir / "demo-report.html"
    report.write_text(_report_html(job_view, run, times))
    say(f"== done in {times['total']} s; report: {report.resolve()}")
    say("   stage times: " + ", ".join(f"{k} {v} s" for k, v in times.items()))
    return {"job_id": job_id, "run_id": run["run_id"], "times": times, "report": str(report), "run": run}


def _report_html(job_view: str, run: dict, times: dict) -> str:
    """The job viewer page with the student table and stage times added before its closing body tag."""
    rows = "".join(f"<tr><td>{escape(name)}</td><td>{acc:.3f}</td></tr>" for name, acc in
                   (("the teacher's rationales + distribution", run["with_rationales"]), ("plain fine-tuning", run["without"]),
                    ("the teacher", run["teacher"])))
    extra = (f"<h2>Students ({escape(run['dataset'])}, measured in this run)</h2><table class='meta'>"
             f"<tr><th>student</th><th>test accuracy</th></tr>{rows}</table>"
             f"<p>gap {run['gap']:+.1f} points; run {escape(run['run_id'])}, promoted: {escape(str(run['promoted']))}</p>"
             "<h2>Stage times</h2><table class='meta'>"
             + "".join(f"<tr><td>{escape(k)}</td><td>{v} s</td></tr>" for k, v in times.items()) + "</table>")
    return job_view.replace("<title>", "<title>salient demo: ", 1).replace("</body>", extra + "</body>", 1)
