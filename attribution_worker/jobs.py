"""Attribution jobs on Ray: a dataset cut into shards, attributed by a pool of TeacherActors.

    from attribution_worker.jobs import JobSpec, run_job
    spec = JobSpec(dataset="cqa", split="train", engine={"teacher": "google/flan-t5-xl", "k": 5}, shard_size=1000)
    summary = run_job(catalog, spec)                 # blocks; this process is the driver
    summary = run_job(catalog, spec, job_id=summary["job_id"])   # resume: committed shards are skipped

This process is the driver and the only catalog writer: actors return Arrow tables, the driver
writes each shard atomically (`storage.write_shard`: rationales/dataset=<name>/job=<id>/shard-XXXXX.parquet)
and commits it, which keeps the job's progress counts current. Job life (DESIGN.md "Job lifecycle"):

* queued -> running -> succeeded; at most `max_in_flight_per_actor` shards per actor are in flight.
* A dead actor (`RayActorError`: its process was killed, OOM, node lost) is replaced and every shard
  it had in flight is retried; a shard retried more than `max_retries` times fails the job, and the
  job's message names the shard and the cause. A row the engine cannot attribute is written with
  `error` set and the job goes on.
* `request_cancel(catalog, job_id)` (-> cancelling) stops dispatching; committed shards stay, the
  job ends cancelled. Ctrl-C (KeyboardInterrupt) in the driver ends it failed with a resume hint.
* Re-running the same job id resumes it: committed shards are skipped and each shard is committed
  exactly once (`Catalog.commit_shard` refuses a second commit of the same index).
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

from storage import Catalog, write_shard

from .cluster import actor_options, cluster_gpus, connect, job_setting
from .rows import DatasetRows, dataset_format
from .spec import RUNTIME_FIELDS, JobSpec  # noqa: F401  (JobSpec is re-exported: jobs.JobSpec)
from .templates import scaffolding_for_format, template_for_format


class JobFailed(RuntimeError):
    """The job ended failed; the message (also in the job row) says which shard and why."""


def request_cancel(catalog: Catalog, job_id: str) -> dict:
    """Ask a running job to stop: its driver stops dispatching at the next check and ends it cancelled."""
    return catalog.mark_cancelling(job_id)


def dataset_versions(catalog: Catalog, dataset: str, split: str | None) -> list[str]:
    """The active parts of `dataset` (one split or all) as sorted 'split:version' strings."""
    sql = "SELECT split, version FROM datasets WHERE active AND name = ?"
    params = [dataset]
    if split:
        sql += " AND split = ?"
        params.append(split)
    return [f"{r['split']}:{r['version']}" for r in catalog.query(sql + " ORDER BY split", params)]


def pin_dataset_versions(catalog: Catalog, spec: JobSpec, job_id: str | None = None) -> JobSpec:
    """`spec` with dataset_versions set to the dataset's active parts; refused when they were set and differ."""
    current = dataset_versions(catalog, spec.dataset, spec.split)
    if spec.dataset_versions is None:
        return spec.model_copy(update={"dataset_versions": current})
    if spec.dataset_versions != current:
        raise ValueError(f"{spec.dataset} changed since job {job_id or spec.default_job_id()} was created "
                         f"(parts {', '.join(spec.dataset_versions)} -> {', '.join(current) or 'none'}): its committed "
                         "shards explain the old rows; start a new job (omit --job-id / --resume) for the new data")
    return spec


def job_id_for(catalog: Catalog, spec: JobSpec) -> str:
    """The id `run_job(catalog, spec)` gives the job when no job_id is passed."""
    return pin_dataset_versions(catalog, spec).default_job_id()


def _resolve_spec(catalog: Catalog, spec: JobSpec, job_id: str) -> JobSpec:
    """A resumed job keeps its stored output fields; only RUNTIME_FIELDS may change."""
    job = catalog.get_job(job_id)
    if job is None:
        return spec
    stored = JobSpec.from_stored(job["spec"])
    mine, theirs = spec.output_fields(), stored.output_fields()
    differ = [k for k, v in mine.items() if theirs.get(k) != v]
    if differ == ["dataset_versions"]:
        raise ValueError(f"{spec.dataset} changed since job {job_id} was created (parts "
                         f"{', '.join(stored.dataset_versions or [])} -> {', '.join(spec.dataset_versions or []) or 'none'}): "
                         "its committed shards explain the old rows; start a new job for the new data "
                         "(omit --job-id / --resume)")
    if differ:
        detail = []
        for k in differ:
            if k == "engine":
                detail += [f"engine.{f}={theirs['engine'].get(f)!r}" for f, v in mine["engine"].items()
                           if theirs["engine"].get(f) != v]
            else:
                detail.append(f"{k}={theirs.get(k)!r}")
        raise ValueError(f"job {job_id} exists with different {', '.join(differ)} ({', '.join(detail)}): resume it "
                         f"with `salient attribute --resume {job_id}` or pick a new --job-id")
    return stored.model_copy(update={k: getattr(spec, k) for k in RUNTIME_FIELDS})


def load_spec(catalog: Catalog, job_id: str, **runtime) -> JobSpec:
    """The stored spec of `job_id` with RUNTIME_FIELDS overridden where given (not None): for --resume."""
    job = catalog.get_job(job_id)
    if job is None:
        raise ValueError(f"no job {job_id!r} to resume: list jobs with `salient sql \"SELECT * FROM jobs\"`")
    stored = JobSpec.from_stored(job["spec"])
    return stored.model_copy(update={k: v for k, v in runtime.items() if v is not None and k in RUNTIME_FIELDS})


def prepare_job(catalog: Catalog, spec: JobSpec, job_id: str | None = None, *,
                idempotency_key: str | None = None) -> tuple[dict, JobSpec, DatasetRows]:
    """Create the job row (queued) or find it to resume; returns (job row, effective spec, dataset rows).

    Every executor (Ray: run_job, in-process: local.run_local) starts here, so the job id, the
    pinned dataset versions and the resume checks are the same on every path. The rows are not
    loaded: DatasetRows reads one shard at a time. idempotency_key (the service's `Idempotency-Key`
    header) is stored on a newly created row.

    A resumed job keeps its stored output fields (only RUNTIME_FIELDS may change) and must see the
    same number of rows; a cancelled job is not resumed.
    """
    spec = pin_dataset_versions(catalog, spec, job_id)
    job_id = job_id or spec.default_job_id()
    spec = _resolve_spec(catalog, spec, job_id)
    table = DatasetRows.open(catalog, spec.dataset, spec.split, spec.limit)
    n_rows = table.num_rows
    n_shards = (n_rows + spec.shard_size - 1) // spec.shard_size
    job = catalog.create_job(job_id, dataset=spec.dataset, split=spec.split, spec=spec.model_dump(),
                             total_rows=n_rows, shards_total=n_shards, idempotency_key=idempotency_key)
    if job["total_rows"] != n_rows:
        raise ValueError(f"job {job_id} was created over {job['total_rows']} rows but {spec.dataset} now has {n_rows} "
                         "(a new dataset version?): start a new --job-id")
    if job["status"] == "cancelled":
        raise ValueError(f"job {job_id} was cancelled; its committed shards stay. Start a new --job-id to run again")
    return job, spec, table


def engine_config(catalog: Catalog, spec: JobSpec) -> dict:
    """The AttributionConfig dict an executor loads: template and scaffolding follow the dataset's format unless
    set."""
    fmt = dataset_format(catalog, spec.dataset)
    return spec.engine_config(template_for_format(fmt), scaffolding_for_format(fmt))


def run_job(catalog: Catalog, spec: JobSpec, *, job_id: str | None = None,
            progress: Callable[[dict], None] | None = None, address: str | None = None) -> dict:
    """Run (or resume) a job with this process as the driver; returns a summary dict.

    progress(event) is called after every committed shard and every retry; event has kind
    ("shard" | "retry"), job_id, shard, shards_done, shards_total, rows_done, total_rows, error_rows,
    and actors (the live actor handles). Raises JobFailed when the job ends failed, ValueError for
    bad input (unknown dataset, a spec that differs from the stored one). KeyboardInterrupt passes
    through after the job is marked failed with a resume hint. Connects to Ray (cluster.connect)
    unless this process already is a driver, and shuts down only what it started.
    """
    job, spec, table = prepare_job(catalog, spec, job_id)
    job_id, n_shards = job["job_id"], job["shards_total"]
    config = engine_config(catalog, spec)
    done = catalog.committed_shards(job_id)
    todo = [i for i in range(n_shards) if i not in done]
    base = {"job_id": job_id, "rows": table.num_rows, "shards": n_shards, "skipped_shards": len(done)}
    if not todo and job["status"] == "succeeded":  # re-running a finished job is a no-op
        return {**base, "status": "succeeded", "committed_now": 0, "retries": 0, "seconds": 0.0, "rows_per_s": None,
                "actor_nodes": []}
    if job["status"] == "cancelling" or not _start(catalog, job_id):  # cancelled before its driver started
        job = catalog.mark_cancelled(job_id, "cancelled before it started")
        return {**base, "status": "cancelled", "committed_now": 0, "retries": 0, "seconds": 0.0, "rows_per_s": None,
                "actor_nodes": []}
    runner = _Runner(catalog, spec, job_id, table, config, todo, n_shards, progress)
    started = False
    try:
        started = connect(address)
        return {**base, **runner.run()}
    except BaseException as exc:
        if catalog.get_job(job_id)["status"] in ("running", "cancelling"):  # e.g. Ray could not start
            catalog.mark_failed(job_id, f"{type(exc).__name__}: {exc}"[:1000])
        raise
    finally:
        runner.stop_actors()
        if started:
            import ray

            ray.shutdown()


def _start(catalog: Catalog, job_id: str) -> bool:
    """queued/failed/running -> running; False when a cancel request (`jobs cancel`) came first."""
    from storage import JobStateError

    try:
        catalog.mark_running(job_id)
        return True
    except JobStateError:
        if catalog.get_job(job_id)["status"] == "cancelling":
            return False
        raise


class _Runner:
    """The dispatch loop of one job run (driver side)."""

    def __init__(self, catalog, spec: JobSpec, job_id: str, table: DatasetRows, config: dict, todo: list[int],
                 n_shards: int, progress):
        self.catalog, self.spec, self.job_id, self.table, self.config = catalog, spec, job_id, table, config
        self.pending = deque(todo)
        self.n_shards, self.progress = n_shards, progress
        self.actors: list = []
        self.attempts: dict[int, int] = {}
        self.retries = 0
        self.committed_now = 0
        self.rows_now = 0

    # ------------------------------------------------------------ actors
    def _new_actor(self):
        from .actor import TeacherActor

        return TeacherActor.options(**self.options).remote(self.config, num_threads=self.options.get("num_cpus"),
                                                           nice=int(job_setting("actor_nice")))

    def start_actors(self) -> list[str]:
        import ray

        n, self.options = actor_options(gpus_available=cluster_gpus(), actors=self.spec.actors,
                                        num_cpus_per_actor=self.spec.num_cpus_per_actor,
                                        resources=self.spec.actor_resources)
        self.actors = [self._new_actor() for _ in range(n)]
        timeout = job_setting("actor_start_timeout_s")
        nodes: list[str | None] = [None] * n
        for slot in range(n):
            for attempt in range(self.spec.max_retries + 1):  # an actor that dies while starting is replaced
                try:
                    nodes[slot] = ray.get(self.actors[slot].node_id.remote(), timeout=timeout)
                    break
                except ray.exceptions.GetTimeoutError:
                    raise JobFailed(f"{n} actor(s) with {self.options} could not start within {timeout:.0f} s "
                                    f"(cluster resources: {ray.cluster_resources()}): lower --actors / "
                                    "--num-cpus-per-actor or raise SALIENT_ACTOR_START_TIMEOUT_S") from None
                except ray.exceptions.RayActorError as exc:
                    if attempt == self.spec.max_retries:
                        raise JobFailed(f"the teacher actor failed to start {attempt + 1} time(s): {_cause(exc)}") from None
                    self.actors[slot] = self._new_actor()
        return nodes

    def _actor_cpu(self) -> float | None:
        """Summed CPU seconds of the live actors; None once an actor was replaced (not comparable)."""
        import ray

        if self.retries:
            return None
        try:
            return sum(ray.get([a.cpu_seconds.remote() for a in self.actors], timeout=60))
        except ray.exceptions.RayError:
            return None

    def stop_actors(self) -> None:
        import ray

        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:
                pass
        self.actors = []

    # ------------------------------------------------------------ loop
    def run(self) -> dict:
        t0 = time.perf_counter()
        try:
            nodes = self.start_actors()
            t_ready, cpu_ready = time.perf_counter(), time.process_time()
            cpu_before = self._actor_cpu()
            status = self._loop()
            cpu_after = self._actor_cpu()
            actor_cpu = cpu_after - cpu_before if None not in (cpu_before, cpu_after) else None
            driver_cpu = time.process_time() - cpu_ready
        except KeyboardInterrupt:
            done = len(self.catalog.committed_shards(self.job_id))
            self.catalog.mark_failed(self.job_id, f"interrupted with {done}/{self.n_shards} shards committed; "
                                                  f"resume with `salient attribute --resume {self.job_id}`")
            raise
        except JobFailed as exc:
            self.catalog.mark_failed(self.job_id, str(exc)[:1000])
            raise
        except BaseException as exc:
            self.catalog.mark_failed(self.job_id, f"{type(exc).__name__}: {exc}"[:1000])
            raise
        seconds = time.perf_counter() - t0
        # rows_per_s: committed rows over the whole run (actor start and teacher load included);
        # startup_s: the part of `seconds` spent placing actors and loading the teacher.
        return {"status": status, "committed_now": self.committed_now, "rows_now": self.rows_now,
                "retries": self.retries, "seconds": round(seconds, 3), "startup_s": round(t_ready - t0, 3),
                "driver_cpu_s": round(driver_cpu, 3), "actor_cpu_s": None if actor_cpu is None else round(actor_cpu, 3),
                "rows_per_s": round(self.rows_now / seconds, 2) if seconds > 0 else None, "actor_nodes": nodes}

    def _submit(self, slot: int, index: int):
        size = self.spec.shard_size
        rows = self.table.slice(index * size, size).to_pylist()  # read from Parquet when dispatched
        return self.actors[slot].attribute_shard.remote(
            rows, dataset=self.spec.dataset, split=self.spec.split, job_id=self.job_id, shard_index=index)

    def _retry(self, index: int, cause: str) -> None:
        self.attempts[index] = self.attempts.get(index, 0) + 1
        if self.attempts[index] > self.spec.max_retries:
            raise JobFailed(f"shard {index} failed {self.attempts[index]} time(s) (max_retries={self.spec.max_retries}); "
                            f"last cause: {cause}")
        self.retries += 1
        self.pending.appendleft(index)
        self._emit("retry", index, cause=cause)

    def _loop(self) -> str:
        import ray

        per_actor = self.spec.max_in_flight_per_actor
        poll = job_setting("poll_interval_s")
        inflight: dict = {}  # ref -> (slot, shard index)
        load = [0] * len(self.actors)
        while self.pending or inflight:
            if self._cancel_requested():
                for ref in inflight:
                    ray.cancel(ref, force=False)
                done = len(self.catalog.committed_shards(self.job_id))
                self.catalog.mark_cancelled(self.job_id, f"cancelled with {done}/{self.n_shards} shards committed")
                return "cancelled"
            while self.pending:
                slot = min(range(len(self.actors)), key=lambda s: load[s])
                if load[slot] >= per_actor:
                    break
                index = self.pending.popleft()
                inflight[self._submit(slot, index)] = (slot, index)
                load[slot] += 1
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=poll)
            for ref in ready:
                if ref not in inflight:  # dropped when its actor was replaced
                    continue
                slot, index = inflight.pop(ref)
                load[slot] -= 1
                try:
                    table = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    # the actor is gone: replace it, retry every shard it had in flight
                    lost = [index] + [i for r, (s, i) in list(inflight.items()) if s == slot]
                    for r in [r for r, (s, _) in inflight.items() if s == slot]:
                        del inflight[r]
                    load[slot] = 0
                    self.actors[slot] = self._new_actor()
                    for i in sorted(lost, reverse=True):
                        self._retry(i, f"actor died: {_cause(exc)}")
                    continue
                except ray.exceptions.RayError as exc:  # the task raised, its result was lost, ...
                    self._retry(index, _cause(exc))
                    continue
                info = write_shard(self.catalog, table, dataset=self.spec.dataset, job_id=self.job_id, index=index)
                self.committed_now += int(info["committed"])
                self.rows_now += info["rows"] if info["committed"] else 0
                self._emit("shard", index, **{k: info[k] for k in ("path", "rows", "error_rows")})
        self.catalog.mark_succeeded(self.job_id)
        return "succeeded"

    def _cancel_requested(self) -> bool:
        return self.catalog.get_job(self.job_id)["status"] == "cancelling"

    def _emit(self, kind: str, index: int, **extra: Any) -> None:
        if not self.progress:
            return
        job = self.catalog.get_job(self.job_id)
        self.progress({"kind": kind, "job_id": self.job_id, "shard": index, "shards_done": job["shards_done"],
                       "shards_total": self.n_shards, "rows_done": job["done_rows"], "total_rows": job["total_rows"],
                       "error_rows": job["error_rows"], "actors": list(self.actors), **extra})


def _cause(exc: BaseException) -> str:
    """The first meaningful line of a Ray error (they carry whole remote tracebacks)."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    pick = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[0] if lines else type(exc).__name__)
    return f"{type(exc).__name__}: {pick}"[:400]
