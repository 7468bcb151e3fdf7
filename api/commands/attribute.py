"""`salient attribute`: run an attribution job on Ray with this process as the driver.

    salient attribute --dataset cqa --teacher google/flan-t5-xl --method saliency --k 5 --wait
    salient attribute --resume job-cqa-1a2b3c4d5e6f --wait        # skips committed shards
    RAY_ADDRESS=head:6379 salient attribute --dataset cqa --teacher ./teacher --actors 8 --wait

Ray is embedded by default (a private `ray.init(address="local")` for the job, shut down after
it); a cluster is joined only when asked: RAY_ADDRESS or --ray-address. Without --wait the job
row is created (queued) and a background driver (`salient attribute --resume ID --wait`) is
started on this machine, logging beside the job's shards (driver.log); this command watches it
until the job runs (driver_start_timeout_s) and marks the job failed, with the log's last lines,
if the driver exits first. Ctrl-C stops a --wait job; committed shards stay and --resume goes on.
"""
from __future__ import annotations

import json
import subprocess
import sys

from .common import open_catalog


def register(sub) -> None:
    from attribution_worker.spec import add_spec_arguments

    p = sub.add_parser("attribute", help="attribute a dataset as a Ray job (private local Ray, or RAY_ADDRESS)")
    p.add_argument("--resume", metavar="JOB_ID", help="resume this job with its stored spec (runtime flags may change)")
    p.add_argument("--job-id", default=None,
                   help="job id (default: derived from the dataset and settings); re-running the same id resumes it")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="join this Ray cluster (default: $RAY_ADDRESS, else a private local Ray for the job)")
    p.add_argument("--wait", action="store_true",
                   help="drive the job in this process with a progress bar (default: start a background driver)")
    add_spec_arguments(p, ray=True)
    p.set_defaults(func=cmd_attribute)


def spec_from_args(args, cat, *, ray: bool = True):
    """(JobSpec, job id or None) from the generated flags; --resume loads the stored spec.

    Shared by `attribute` and `attribute-local`. Invalid values raise ValueError naming the flag.
    """
    from pydantic import ValidationError

    from attribution_worker.jobs import load_spec
    from attribution_worker.spec import RUNTIME_FIELDS, JobSpec, spec_fields_from_args, validation_message

    given = spec_fields_from_args(args, ray=ray)
    try:
        if args.resume:
            other = sorted(set(given) - set(RUNTIME_FIELDS))
            if other:
                raise ValueError(f"--resume JOB_ID takes the job's options from the stored job; drop "
                                 f"{', '.join('--' + k.replace('_', '-') for k in other)} (only runtime flags may change)")
            return load_spec(cat, args.resume, **given), args.resume
        if not given.get("dataset") or not given.get("teacher"):
            raise ValueError("give --dataset and --teacher (or --resume JOB_ID)")
        return JobSpec(**given), args.job_id
    except ValidationError as exc:
        raise ValueError(validation_message(exc)) from None


def cmd_attribute(args) -> int:
    from attribution_worker.jobs import JobFailed, prepare_job, run_job

    with open_catalog(args) as cat:
        spec, job_id = spec_from_args(args, cat)
        if not args.wait:
            job, spec, _ = prepare_job(cat, spec, job_id)
            return _start_driver(cat, args, job, spec)
        bar = _ProgressBar()
        try:
            summary = run_job(cat, spec, job_id=job_id, progress=bar, address=args.ray_address)
        except JobFailed as exc:
            bar.close()
            print(f"salient: job failed: {exc}", file=sys.stderr)
            return 1
        except BaseException as exc:
            _fail_if_queued(cat, job_id, exc)
            raise
        finally:
            bar.close()
        print(json.dumps({k: v for k, v in summary.items()}, default=str))
        return 0


def _fail_if_queued(cat, job_id: str | None, exc: BaseException) -> None:
    """A driver that stops before its job runs must not leave it queued forever."""
    job = cat.get_job(job_id) if job_id else None
    if job is not None and job["status"] in ("queued", "cancelling"):
        cat.mark_failed(job_id, f"the driver stopped before the job ran: {type(exc).__name__}: {exc}"[:1000])


def _start_driver(cat, args, job: dict, spec) -> int:
    """Start `salient attribute --resume ID --wait` in its own session; watch it until the job leaves
    `queued` (or driver_start_timeout_s). A driver that exits first fails the job with its log's tail."""
    import time

    from attribution_worker.cluster import job_setting

    job_id = job["job_id"]
    log = cat.store.driver_log_path(spec.dataset, job_id)
    cmd = [sys.executable, "-m", "api", "--store", str(cat.store.root), "attribute", "--resume", job_id, "--wait"]
    if args.ray_address:
        cmd += ["--ray-address", args.ray_address]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + job_setting("driver_start_timeout_s")
    status = "queued"
    while time.monotonic() < deadline:
        status = cat.get_job(job_id)["status"]
        if status != "queued":
            break
        if proc.poll() is not None:  # exited without taking the job
            status = cat.get_job(job_id)["status"]
            if status == "queued":
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                cat.mark_failed(job_id, f"the background driver (pid {proc.pid}) exited with code {proc.returncode} "
                                        f"before the job ran: {tail}; fix the cause and run "
                                        f"`salient attribute --resume {job_id}`"[:1000])
                status = "failed"
            break
        time.sleep(0.2)
    print(json.dumps({"job_id": job_id, "status": status, "driver_pid": proc.pid, "log": str(log)}))
    return 1 if status == "failed" else 0


class _ProgressBar:
    """tqdm over shards, on stderr; retries are printed above the bar."""

    def __init__(self):
        self.bar = None

    def __call__(self, event: dict) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=event["shards_total"], initial=event["shards_done"] - (event["kind"] == "shard"),
                            unit="shard", desc=event["job_id"], file=sys.stderr)
        if event["kind"] == "retry":
            self.bar.write(f"retrying shard {event['shard']}: {event['cause']}", file=sys.stderr)
        else:
            self.bar.update(1)
            self.bar.set_postfix(rows=f"{event['rows_done']}/{event['total_rows']}", errors=event["error_rows"])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
