"""Ray for attribution jobs: the job settings, connecting to a cluster, sizing the actor pool.

    from attribution_worker.cluster import connect, job_setting
    started = connect()          # RAY_ADDRESS set: join that cluster; else start a private one here
    ...
    if started: ray.shutdown()

Embedded by default: `ray.init(address="local")` starts a private Ray for this job on this
machine (never an unrelated `ray start` cluster that happens to run here) and the job shuts it
down. A cluster is joined only when asked: RAY_ADDRESS or `address=` (`--ray-address`)
(`ray://head:10001` or `head:6379`) -- with token auth on (Ray's default for `ray start --head`)
also RAY_AUTH_TOKEN. Every limit of a job is a named setting of the one registry (storage.settings; JOB_SETTINGS
names them, STYLE.md 4): the
`salient attribute` flags read their defaults from it, `SALIENT_<NAME>` overrides a default, and
docs/jobs.md documents each one (a test checks).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from storage.settings import SETTINGS, Setting, get_setting

# The job settings live in the one registry (storage.settings.SETTINGS); these are their names.
JOB_SETTING_NAMES = ("shard_size", "actors", "actor_nice", "num_cpus_per_actor", "max_in_flight_per_actor",
                     "max_retries", "poll_interval_s", "actor_start_timeout_s", "driver_start_timeout_s")
JOB_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.name in JOB_SETTING_NAMES)


def job_setting(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The value of job setting `name`: an explicit non-None override, else $SALIENT_<NAME>, else the default."""
    if name not in JOB_SETTING_NAMES:
        raise ValueError(f"unknown job setting {name!r}; known: {', '.join(JOB_SETTING_NAMES)}")
    return get_setting(name, overrides)


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Make sure this process is a Ray driver; returns True when this call started or joined Ray.

    address: a cluster address to join; None reads RAY_ADDRESS, and without it a private local Ray
    starts here (`address="local"`: a cluster already running on this machine is not joined;
    num_cpus caps its CPUs, None lets Ray count them). Already initialised: nothing happens (False).
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return True


def cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def actor_options(*, gpus_available: int, actors: int, num_cpus_per_actor: float,
                  resources: Mapping[str, float] | None = None) -> tuple[int, dict]:
    """How many actors, and the Ray options of each: (n_actors, options).

    GPUs in the cluster: `num_gpus=1` per actor (Ray sets CUDA_VISIBLE_DEVICES; the actor uses
    cuda:0) and, by default, one actor per GPU. No GPU: CPU actors of `num_cpus_per_actor` CPUs,
    one by default. `resources` (custom Ray resources, e.g. {"salient_slot": 1}) pins actors to
    the nodes that offer them.
    """
    if actors < 0:
        raise ValueError("--actors: must be >= 0 (0 = one per GPU, or one on CPU)")
    if gpus_available > 0:
        n = actors or gpus_available
        options: dict = {"num_gpus": 1, "num_cpus": 1}
    else:
        n = actors or 1
        options = {"num_gpus": 0, "num_cpus": num_cpus_per_actor}
    if resources:
        options["resources"] = dict(resources)
    return n, options
