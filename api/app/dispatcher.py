"""The job queue's dispatcher: runs queued jobs on Ray, a bounded number at a time, inside the service.

    dispatcher = Dispatcher(catalog, settings, metrics)
    dispatcher.start()          # joins/starts Ray, resumes jobs a crash left running, then polls
    dispatcher.wake()           # a job was queued: look now instead of at the next poll
    dispatcher.cancel(job_id)   # queued -> cancelled; running -> cancelling (the driver ends it cancelled)
    dispatcher.stop()

Jobs are durable rows in the catalog (status queued/running/...): the queue *is* the jobs table, so a
restarted service finds its work there. At start, jobs left `running` are resumed first (their
committed shards are skipped: `attribution_worker.jobs.run_job` with the job's id), jobs left
`cancelling` are marked cancelled (their driver died with the old process), then queued jobs are
started oldest first, at most `max_concurrent_jobs` at a time, each driven by
`run_job(catalog, spec, job_id=...)` in its own thread of this process (this process is the Ray
driver and the catalog writer). Ray: `settings.ray_address`, else $RAY_ADDRESS, else a local
cluster (`ray.init(address="local")`) that lives as long as the service.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from storage import Catalog

from .core.config import ServiceSettings
from .metrics import Metrics

log = logging.getLogger("salient.dispatcher")


class _TimedCatalog:
    """The catalog as a job driver sees it, with shard commits timed into the metrics (composition, no subclass)."""

    def __init__(self, catalog: Catalog, metrics: Metrics):
        self._catalog, self._metrics = catalog, metrics

    def commit_shard(self, job_id: str, **kw) -> bool:
        t0 = time.perf_counter()
        committed = self._catalog.commit_shard(job_id, **kw)
        self._metrics.shard_commit_seconds.observe(time.perf_counter() - t0)
        if committed:
            self._metrics.rows_committed.inc(kw.get("rows", 0))
        return committed

    def __getattr__(self, name):
        return getattr(self._catalog, name)


class Dispatcher:
    def __init__(self, catalog: Catalog, settings: ServiceSettings, metrics: Metrics):
        self.catalog, self.settings, self.metrics = catalog, settings, metrics
        self._lock = threading.Lock()
        self._active: dict[str, threading.Thread] = {}
        self._resume: list[str] = []  # jobs a crash left running, and failed jobs submitted again (POST /v1/jobs)
        self._foreign: set[str] = set()  # queued jobs whose spec is not a JobSpec: never ours to run
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ray_started = False
        self.ray_error: str | None = None

    # ------------------------------------------------------------ life
    def start(self) -> None:
        self._connect_ray()
        self._recover()
        self._thread = threading.Thread(target=self._loop, name="salient-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching. Jobs still running stay `running` in the catalog and resume at the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._ray_started:
            import ray

            try:
                ray.shutdown()
            except Exception:  # the process is going away anyway
                pass

    def ready(self) -> bool:
        import ray

        return self._thread is not None and self._thread.is_alive() and ray.is_initialized()

    def _connect_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        address = self.settings.ray_address or os.environ.get("RAY_ADDRESS") or "local"
        kw = {"num_cpus": self.settings.ray_num_cpus, "include_dashboard": False} if address == "local" else {}
        ray.init(address=address, log_to_driver=False, **kw)
        self._ray_started = True

    def _recover(self) -> None:
        """At start: jobs a crash left `running` are resumed first; `cancelling` ones end cancelled."""
        for job in self.catalog.jobs("cancelling"):
            self.catalog.mark_cancelled(job["job_id"], "cancelled: the service stopped while the job was cancelling")
        with self._lock:
            self._resume = [j["job_id"] for j in self.catalog.jobs("running")] + self._resume

    # ------------------------------------------------------------ queue
    def wake(self) -> None:
        self._wake.set()

    def resume(self, job_id: str) -> None:
        """Run a failed job again at the next poll (it resumes: committed shards are skipped)."""
        with self._lock:
            if job_id not in self._resume:
                self._resume.append(job_id)
        self._wake.set()

    def active(self) -> list[str]:
        with self._lock:
            return list(self._active)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._fill()
            except Exception:  # a catalog hiccup must not kill the dispatcher; the next poll retries
                log.exception("dispatcher poll failed")
            self._wake.wait(self.settings.dispatcher_poll_s)
            self._wake.clear()

    def _fill(self) -> None:
        with self._lock:
            free = self.settings.max_concurrent_jobs - len(self._active)
            if free <= 0:
                return
            # jobs to resume (a crash left them running, or a failed job was submitted again) come first, then
            # queued attribution jobs oldest first. A `running` job found later belongs to another driver
            # (`salient attribute --wait`), and a job whose spec is not a JobSpec (e.g. a trainer benchmark's
            # bookkeeping job) is not the dispatcher's to run: both are left alone.
            waiting = self._resume + [j["job_id"] for j in self.catalog.jobs("queued") if self._is_attribution_job(j["job_id"])]
            start = [j for j in dict.fromkeys(waiting) if j not in self._active][:free]
            self._resume = [j for j in self._resume if j not in start]
            for job_id in start:
                t = threading.Thread(target=self._drive, args=(job_id,), name=f"job-{job_id}", daemon=True)
                self._active[job_id] = t
                t.start()

    def _is_attribution_job(self, job_id: str) -> bool:
        from attribution_worker.spec import JobSpec

        if job_id in self._foreign:
            return False
        job = self.catalog.get_job(job_id)
        try:
            JobSpec.from_stored(job["spec"] or {})
        except Exception:
            self._foreign.add(job_id)
            return False
        return True

    def cancel(self, job_id: str) -> dict:
        """Cancel `job_id`: a queued job not yet picked up ends cancelled now; a running one is asked to stop."""
        from attribution_worker.jobs import request_cancel

        with self._lock:
            job = self.catalog.get_job(job_id)
            if job is None:
                raise KeyError(job_id)
            if job["status"] == "queued" and job_id not in self._active:
                return self.catalog.mark_cancelled(job_id, "cancelled before it started")
            return request_cancel(self.catalog, job_id)

    def _drive(self, job_id: str) -> None:
        from attribution_worker.jobs import JobFailed, load_spec, run_job

        try:
            spec = load_spec(self.catalog, job_id)
            run_job(_TimedCatalog(self.catalog, self.metrics), spec, job_id=job_id)
        except JobFailed as exc:  # run_job marked it failed with the reason
            log.warning("job %s failed: %s", job_id, exc)
        except Exception as exc:
            log.exception("job %s stopped", job_id)
            job = self.catalog.get_job(job_id)
            if job is not None and job["status"] == "cancelling":  # cancelled before its driver started
                self.catalog.mark_cancelled(job_id, "cancelled before it started")
            elif job is not None and job["status"] in ("queued", "running"):
                self.catalog.mark_failed(job_id, f"{type(exc).__name__}: {exc}"[:1000])
        finally:
            with self._lock:
                self._active.pop(job_id, None)
            self._wake.set()
