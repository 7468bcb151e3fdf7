"""Actor sizing (GPU vs CPU), job settings, and the JobSpec's validation. No Ray cluster needed.

The GPU path is checked on the resource-selection function only (no GPU here); the TeacherActor
itself runs on a real local cluster in test_jobs.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_one_gpu_actor_per_gpu_by_default():
    from attribution_worker.cluster import actor_options

    assert actor_options(gpus_available=4, actors=0, num_cpus_per_actor=2) == (4, {"num_gpus": 1, "num_cpus": 1})
    n, opts = actor_options(gpus_available=4, actors=2, num_cpus_per_actor=2, resources={"gpu_node": 1})
    assert n == 2 and opts == {"num_gpus": 1, "num_cpus": 1, "resources": {"gpu_node": 1}}


def test_cpu_actors_without_gpus():
    from attribution_worker.cluster import actor_options

    assert actor_options(gpus_available=0, actors=0, num_cpus_per_actor=2) == (1, {"num_gpus": 0, "num_cpus": 2})
    assert actor_options(gpus_available=0, actors=3, num_cpus_per_actor=0.5) == (3, {"num_gpus": 0, "num_cpus": 0.5})
    with pytest.raises(ValueError, match="--actors"):
        actor_options(gpus_available=0, actors=-1, num_cpus_per_actor=1)


def test_job_settings_env_override_and_validation(monkeypatch):
    from attribution_worker.cluster import job_setting
    from attribution_worker.jobs import JobSpec

    assert job_setting("shard_size") == 1000
    monkeypatch.setenv("SALIENT_SHARD_SIZE", "250")
    monkeypatch.setenv("SALIENT_ACTORS", "0")
    assert job_setting("shard_size") == 250 and job_setting("actors") == 0
    assert JobSpec(dataset="d", teacher="t").shard_size == 250
    assert job_setting("shard_size", {"shard_size": 7}) == 7
    monkeypatch.setenv("SALIENT_MAX_RETRIES", "many")
    with pytest.raises(ValueError, match="SALIENT_MAX_RETRIES"):
        job_setting("max_retries")


def test_job_spec_errors_name_the_flag():
    from pydantic import ValidationError

    from attribution_worker.jobs import JobSpec

    with pytest.raises(ValidationError, match="--method"):
        JobSpec(dataset="d", teacher="t", method="magic")
    with pytest.raises(ValidationError, match="shard_size"):
        JobSpec(dataset="d", teacher="t", shard_size=0)
    with pytest.raises(ValidationError, match="extra"):
        JobSpec(dataset="d", teacher="t", shardsize=5)


def test_job_id_is_deterministic_and_ignores_runtime_fields():
    from attribution_worker.jobs import JobSpec

    a = JobSpec(dataset="cqa", teacher="t", shard_size=100, actors=1)
    b = JobSpec(dataset="cqa", teacher="t", shard_size=100, actors=4, max_retries=9)
    c = JobSpec(dataset="cqa", teacher="t", shard_size=100, k=3)
    assert a.default_job_id() == b.default_job_id() != c.default_job_id()
    assert JobSpec(**a.model_dump()) == a  # the stored spec round-trips


def test_every_job_setting_is_documented():
    from attribution_worker.cluster import JOB_SETTINGS

    doc = (REPO / "docs" / "jobs.md").read_text()
    missing = [s.name for s in JOB_SETTINGS if f"`{s.name}`" not in doc or s.env_var not in doc]
    assert not missing, f"docs/jobs.md does not document: {missing}"
