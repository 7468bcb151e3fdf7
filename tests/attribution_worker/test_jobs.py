"""Attribution jobs on a real local Ray cluster with the real engine on a tiny T5 teacher.

One module-scoped Ray cluster (2 CPUs) serves every test here. Each test checks the invariant of
DESIGN.md "Job lifecycle": exactly one rationale row per input example, whatever happened.
"""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pyarrow as pa
import pytest

from aw_helpers import ingest_rows
from storage import Catalog

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def teacher(tiny_teachers):
    return tiny_teachers["seq2seq"]


def make_rows(n: int, make_examples) -> list[dict]:
    rows = make_examples(n, seed=3)
    for i, r in enumerate(rows):
        r["example_id"] = f"ex{i:04d}"
    return rows


def register(catalog: Catalog, rows: list[dict], name: str = "toy") -> str:
    """Ingest rows as dataset `name` split test (real ingest); returns the version."""
    return ingest_rows(catalog, rows, name)[0].version


def spec_for(teacher: str, **kw):
    from attribution_worker.jobs import JobSpec

    base = dict(dataset="toy", teacher=teacher, max_new_tokens=3, shard_size=50, actors=2, num_cpus_per_actor=1)
    return JobSpec(**{**base, **kw})


def rationale_ids(catalog: Catalog, job_id: str) -> list[str]:
    return [r["example_id"] for r in catalog.query(
        "SELECT example_id FROM rationales WHERE job_id = ? ORDER BY example_id", [job_id])]


def assert_one_row_per_input(catalog: Catalog, job_id: str, rows: list[dict]) -> None:
    ids = rationale_ids(catalog, job_id)
    assert len(ids) == len(rows), f"{len(ids)} rationale rows for {len(rows)} inputs"
    assert ids == sorted(r["example_id"] for r in rows)


def test_job_yields_one_row_per_example_across_shards(ray_local, catalog, teacher, make_examples):
    from attribution_worker.engine import AttributionConfig, AttributionEngine
    from attribution_worker.jobs import run_job

    rows = make_rows(300, make_examples)
    version = register(catalog, rows)
    spec = spec_for(teacher)
    events = []
    summary = run_job(catalog, spec, progress=events.append)
    assert summary["status"] == "succeeded" and summary["shards"] == 6 and summary["committed_now"] == 6
    job_id = summary["job_id"]
    assert_one_row_per_input(catalog, job_id, rows)
    job = catalog.get_job(job_id)
    assert (job["status"], job["done_rows"], job["shards_done"], job["error_rows"]) == ("succeeded", 300, 6, 0)
    # the pydantic spec is the job row's spec, with the dataset parts it read pinned
    assert job["spec"] == {**spec.model_dump(), "dataset_versions": [f"test:{version}"]}
    files = sorted(p.name for p in catalog.store.job_dir("toy", job_id).glob("shard-*.parquet"))
    assert files == [f"shard-{i:05d}.parquet" for i in range(6)]
    assert [e["shards_done"] for e in events if e["kind"] == "shard"] == [1, 2, 3, 4, 5, 6]
    shard_of = {r["example_id"]: r["shard_index"] for r in catalog.query(
        "SELECT example_id, shard_index FROM rationales WHERE job_id = ?", [job_id])}
    assert all(shard_of[f"ex{i:04d}"] == i // 50 for i in range(300))

    # the same rows through the bare engine (one shard's worth, same batching) give the same rationales
    engine = AttributionEngine(AttributionConfig(**spec.engine_config("generic")))
    bare = engine.attribute(rows[50:100])
    got = {r["example_id"]: r for r in catalog.query(
        "SELECT example_id, rationale, scores FROM rationales WHERE shard_index = 1 AND job_id = ?", [job_id])}
    for b in bare:
        assert got[b["example_id"]]["rationale"] == b["rationale"]
        np.testing.assert_allclose(got[b["example_id"]]["scores"], b["scores"], rtol=1e-5, atol=1e-6)

    # re-running the finished job is a no-op
    again = run_job(catalog, spec)
    assert again["job_id"] == job_id and again["committed_now"] == 0 and again["skipped_shards"] == 6
    assert_one_row_per_input(catalog, job_id, rows)


def test_killed_actor_is_replaced_and_its_shards_retried(ray_local, catalog, teacher, make_examples):
    from attribution_worker.jobs import run_job

    rows = make_rows(300, make_examples)
    register(catalog, rows)
    killed, niceness = [], []

    def kill_first_actor(event):
        if event["kind"] == "shard" and not killed:
            niceness.append(ray.get(event["actors"][0].niceness.remote()))
            pid = ray.get(event["actors"][0].pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    summary = run_job(catalog, spec_for(teacher, shard_size=25), progress=kill_first_actor)
    assert killed and summary["status"] == "succeeded"
    # actor_nice (default 10): attribution yields the CPU to a service or driver on the same machine
    assert niceness[0] >= min(19, os.nice(0) + 10), f"actor {killed[0]} ran at niceness {niceness[0]}"
    assert summary["retries"] >= 1, "the killed actor's in-flight shard was not retried"
    assert_one_row_per_input(catalog, summary["job_id"], rows)
    job = catalog.get_job(summary["job_id"])
    assert (job["done_rows"], job["shards_done"]) == (300, 12)


def test_retries_exhausted_fail_the_job_naming_the_shard(ray_local, catalog, teacher, make_examples):
    from attribution_worker.jobs import JobFailed, job_id_for, run_job

    rows = make_rows(200, make_examples)
    register(catalog, rows)

    def kill_every_actor(event):
        for actor in event["actors"]:
            try:
                os.kill(ray.get(actor.pid.remote(), timeout=60), signal.SIGKILL)
            except ray.exceptions.RayActorError:
                pass

    spec = spec_for(teacher, shard_size=25, actors=1, max_retries=0)
    with pytest.raises(JobFailed, match=r"shard \d+ failed 1 time\(s\) \(max_retries=0\); last cause: .*actor died"):
        run_job(catalog, spec, progress=kill_every_actor)
    job = catalog.get_job(job_id_for(catalog, spec))
    assert job["status"] == "failed" and "max_retries=0" in job["message"] and "shard" in job["message"]
    assert 1 <= job["shards_done"] < 8  # what was committed stays committed
    assert len(rationale_ids(catalog, job["job_id"])) == job["done_rows"]


def test_interrupted_driver_resumes_with_one_row_per_input(ray_local, catalog, teacher, make_examples):
    from attribution_worker.jobs import run_job

    rows = make_rows(200, make_examples)
    register(catalog, rows)
    spec = spec_for(teacher, shard_size=20, actors=1, max_in_flight_per_actor=1)
    seen = []

    def ctrl_c_after_two(event):
        seen.append(event["shard"])
        if len(seen) == 2:
            # What Ctrl-C becomes in the driver: Python's SIGINT handler raises KeyboardInterrupt in the
            # main thread. Raised directly, not through signal.raise_signal: in two full-suite runs the
            # raised signal produced no KeyboardInterrupt at all, while this module alone and every
            # subset tried passed; the cause was not found. The driver's handling is what is tested.
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(catalog, spec, job_id="resume-me", progress=ctrl_c_after_two)
    job = catalog.get_job("resume-me")
    assert job["status"] == "failed" and "--resume resume-me" in job["message"]
    before = job["shards_done"]
    assert 2 <= before < 10 and len(rationale_ids(catalog, "resume-me")) == job["done_rows"]

    summary = run_job(catalog, spec, job_id="resume-me")
    assert summary["status"] == "succeeded"
    assert summary["skipped_shards"] == before and summary["committed_now"] == 10 - before
    assert_one_row_per_input(catalog, "resume-me", rows)
    assert catalog.query("SELECT count(*) AS n FROM shards WHERE job_id = 'resume-me'")[0]["n"] == 10


def test_broken_rows_carry_error_and_the_job_finishes(ray_local, catalog, teacher, make_examples):
    from attribution_worker.jobs import run_job

    rows = make_rows(120, make_examples)
    broken = {"ex0007": " ", "ex0055": " ".join(["cat"] * 300), "ex0101": "\t"}  # ingest refuses an empty input, not a blank one
    for r in rows:
        if r["example_id"] in broken:
            r["input"] = broken[r["example_id"]]
    register(catalog, rows)
    summary = run_job(catalog, spec_for(teacher, shard_size=40, max_input_tokens=128))
    assert summary["status"] == "succeeded"
    assert_one_row_per_input(catalog, summary["job_id"], rows)
    errors = {r["example_id"]: r["error"] for r in catalog.query(
        "SELECT example_id, error FROM rationales WHERE error IS NOT NULL")}
    assert set(errors) == set(broken)
    assert "at most 128" in errors["ex0055"] and "no input text" in errors["ex0007"]
    assert catalog.get_job(summary["job_id"])["error_rows"] == 3


def test_cancel_stops_dispatching_and_keeps_committed_shards(ray_local, catalog, teacher, make_examples):
    from attribution_worker.jobs import request_cancel, run_job

    rows = make_rows(200, make_examples)
    register(catalog, rows)
    spec = spec_for(teacher, shard_size=20, actors=1, max_in_flight_per_actor=1)

    def cancel_after_first(event):
        if event["shards_done"] == 1:
            request_cancel(catalog, event["job_id"])

    summary = run_job(catalog, spec, progress=cancel_after_first)
    assert summary["status"] == "cancelled"
    job = catalog.get_job(summary["job_id"])
    assert job["status"] == "cancelled" and job["shards_done"] < 10
    assert len(rationale_ids(catalog, job["job_id"])) == job["done_rows"] == 20 * job["shards_done"]
    with pytest.raises(ValueError, match="was cancelled"):
        run_job(catalog, spec)


def test_teacher_that_cannot_load_fails_the_job_with_the_cause(ray_local, catalog, tmp_path, make_examples):
    from attribution_worker.jobs import JobFailed, job_id_for, run_job

    register(catalog, make_rows(10, make_examples))
    spec = spec_for(str(tmp_path / "no-such-teacher"), actors=1, max_retries=1)
    with pytest.raises(JobFailed, match="teacher actor failed to start 2 time"):
        run_job(catalog, spec)
    job = catalog.get_job(job_id_for(catalog, spec))
    assert job["status"] == "failed" and "no-such-teacher" in job["message"]


def test_resume_with_a_different_spec_is_refused(ray_local, catalog, teacher, make_examples):
    from attribution_worker.jobs import prepare_job

    register(catalog, make_rows(10, make_examples))
    prepare_job(catalog, spec_for(teacher), job_id="j1")
    with pytest.raises(ValueError, match=r"different engine \(engine.k=5\)"):
        prepare_job(catalog, spec_for(teacher, k=3), job_id="j1")
    _, spec, _ = prepare_job(catalog, spec_for(teacher, actors=1), job_id="j1")  # runtime fields may change
    assert spec.actors == 1


def test_a_new_dataset_version_gets_a_new_job_and_refuses_resume(catalog, teacher, make_examples):
    from attribution_worker.jobs import load_spec, prepare_job

    rows = make_rows(10, make_examples)
    v1 = register(catalog, rows)
    job, spec, _ = prepare_job(catalog, spec_for(teacher))
    assert spec.dataset_versions == [f"test:{v1}"]
    # the same row count with changed content: re-ingested, a new version of the split
    v2 = register(catalog, [{**r, "input": r["input"] + " again"} for r in rows])
    assert v2 != v1
    new_job, new_spec, _ = prepare_job(catalog, spec_for(teacher))
    assert new_job["job_id"] != job["job_id"] and new_spec.dataset_versions == [f"test:{v2}"]
    with pytest.raises(ValueError, match=r"changed since job .*omit --job-id / --resume"):
        prepare_job(catalog, spec_for(teacher), job_id=job["job_id"])
    with pytest.raises(ValueError, match="changed since job"):
        prepare_job(catalog, load_spec(catalog, job["job_id"]), job_id=job["job_id"])


def test_cli_attribute_runs_a_job_and_resumes_by_id(ray_local, catalog, teacher, make_examples, capsys):
    from api.cli import main

    rows = make_rows(60, make_examples)
    register(catalog, rows)
    store = str(catalog.store.root)
    catalog.close()  # the command opens the catalog itself (one writer)
    argv = ["--store", store, "attribute", "--dataset", "toy", "--teacher", teacher, "--k", "3", "--max-new-tokens", "3",
            "--shard-size", "25", "--actors", "1", "--job-id", "cli-job", "--wait"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["job_id"] == "cli-job" and summary["status"] == "succeeded" and summary["shards"] == 3
    assert main(["--store", store, "attribute", "--resume", "cli-job", "--wait"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["committed_now"] == 0 and again["skipped_shards"] == 3
    with Catalog.open(store) as cat:
        assert_one_row_per_input(cat, "cli-job", rows)
        job = cat.get_job("cli-job")
        assert job["spec"]["engine"]["template"] is None and job["spec"]["engine"]["k"] == 3
        assert {r["n"] for r in cat.query("SELECT len(rationale) AS n FROM rationales WHERE error IS NULL")} == {3}


def test_attribute_and_attribute_local_write_identical_rows(ray_local, catalog, teacher, make_examples):
    """One spec, two executors: the same rows (except job_id / created_at), the same default job id."""
    from attribution_worker.jobs import job_id_for, run_job
    from attribution_worker.local import run_local

    rows = make_rows(40, make_examples)
    rows[5]["input"] = " "  # an error row too
    register(catalog, rows)
    spec = spec_for(teacher, shard_size=15, actors=1, method="integrated_gradients", k=3, n_steps=4)
    local = run_local(catalog, spec, job_id="via-local")
    remote = run_job(catalog, spec, job_id="via-ray")
    assert local["shards"] == remote["shards"] == 3
    cols = "* EXCLUDE (job_id, job, created_at)"  # job: the hive partition column of the shard path
    a = catalog.query(f"SELECT {cols} FROM rationales WHERE job_id = 'via-local' ORDER BY example_id")
    b = catalog.query(f"SELECT {cols} FROM rationales WHERE job_id = 'via-ray' ORDER BY example_id")
    assert len(a) == len(b) == 40
    for x, y in zip(a, b):  # equal; floats to rounding (the actor runs torch on 1 thread, this process on more)
        for col in x:
            if isinstance(x[col], float) or (isinstance(x[col], list) and x[col] and isinstance(x[col][0], float)):
                np.testing.assert_allclose(x[col], y[col], rtol=1e-4, atol=1e-6, err_msg=col)
            else:
                assert x[col] == y[col], col
    assert sum(r["error"] is not None for r in a) == 1
    assert catalog.get_job("via-local")["spec"] == catalog.get_job("via-ray")["spec"]
    default = run_local(catalog, spec.model_copy(update={"shard_size": 40}))
    assert default["job_id"] == job_id_for(catalog, spec.model_copy(update={"shard_size": 40}))
    assert default["job_id"].startswith("job-toy-")
