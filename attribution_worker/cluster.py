"""Ray for attribution jobs: the job settings, connecting to a cluster, sizing the actor pool.

    from attribution_worker.cluster import connect, job_setting
    started = connect()          # RAY_ADDRESS set: join that cluster; else start a private one here
    ...
    if started: ray.shutdown()

Embedded by default: `ray.init(address="local")` starts a private Ray for this job on this
machine (never an unrelated `ray start` cluster that happens to run here) and the job shuts it
down. A cluster is joined only when asked: RAY_ADDRESS or `address=` (`--ray-address`)
(`ray://head:10001` or `head:6379`) -- with token auth on (Ray's default for `ray start --head`)
also RAY_AUTH_TOKEN. Every limit of a job is a named setting (JOB_SETTINGS, STYLE.md 4): the
`salient attribute` flags read their defaults from it, `SALIENT_<NAME>` overrides a default, and
docs/jobs.md documents each one (a test checks).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from storage.settings import Setting, coerce

JOB_SETTINGS: tuple[Setting, ...] = (
    Setting("shard_size", 1000,
            "Rows per shard: the unit of dispatch, retry, commit and resume."),
    Setting("actors", 0,
            "TeacherActors in the pool; 0 means one per GPU in the cluster, or one on a CPU-only cluster."),
    Setting("num_cpus_per_actor", 1.0,
            "CPUs each CPU actor reserves (also its torch thread count); ignored for GPU actors."),
    Setting("max_in_flight_per_actor", 2,
            "Shards dispatched to one actor and not yet returned; bounds driver and object-store memory."),
    Setting("max_retries", 2,
            "Times one shard is retried after its actor died or its task failed; then the job fails naming the shard."),
    Setting("poll_interval_s", 1.0,
            "Seconds the driver waits for a finished shard before it checks for cancellation again."),
    Setting("actor_start_timeout_s", 300.0,
            "Seconds an actor may take to be placed and load the teacher before the job fails."),
    Setting("driver_start_timeout_s", 120.0,
            "Seconds `salient attribute` (no --wait) watches its background driver; a driver that exits "
            "before the job runs marks the job failed with its log's last lines."),
)
_BY_NAME = {s.name: s for s in JOB_SETTINGS}
# settings where 0 is a meaningful value (storage.settings treats <= 0 as invalid)
_ZERO_OK = {"actors"}


def job_setting(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The value of job setting `name`: an explicit non-None override, else $SALIENT_<NAME>, else the default."""
    try:
        s = _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown job setting {name!r}; known: {', '.join(_BY_NAME)}") from None
    raw, origin = None, None
    if overrides and overrides.get(name) is not None:
        raw, origin = overrides[name], f"--{name.replace('_', '-')}"
    elif os.environ.get(s.env_var) not in (None, ""):
        raw, origin = os.environ[s.env_var], s.env_var
    if raw is None:
        return s.default
    if name in _ZERO_OK and str(raw).strip() == "0":
        return 0
    return coerce(s, raw, origin)


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
