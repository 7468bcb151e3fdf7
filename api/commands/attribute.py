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
    from attribution_worker.cluster import JOB_SETTINGS
    from attribution_worker.constants import METHODS, TARGETS

    p = sub.add_parser("attribute", help="attribute a dataset as a Ray job (private local Ray, or RAY_ADDRESS)")
    p.add_argument("--dataset", help="an ingested dataset name (see `salient catalog show`)")
    p.add_argument("--teacher", help="Hugging Face id or local path of the teacher model")
    p.add_argument("--resume", metavar="JOB_ID", help="resume this job with its stored spec (runtime flags may change)")
    p.add_argument("--job-id", default=None,
                   help="job id (default: derived from the dataset and settings); re-running the same id resumes it")
    p.add_argument("--split", default=None, help="one split only (default: every split)")
    p.add_argument("--method", default="saliency", choices=METHODS, help="attribution method (default saliency)")
    p.add_argument("--k", type=int, default=5, help="rationale size in words (default 5)")
    p.add_argument("--target", default="teacher", choices=TARGETS, help="explain the teacher's answer or the gold target")
    p.add_argument("--template", default=None, help="prompt template (default: from the dataset's format)")
    p.add_argument("--token-budget", type=int, default=4096, help="max padded tokens per engine batch (default 4096)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="teacher answer length limit (default 32)")
    p.add_argument("--n-steps", type=int, default=16, help="integrated gradients steps (default 16)")
    p.add_argument("--max-input-tokens", type=int, default=None, help="longest input in tokens (default: the teacher's)")
    p.add_argument("--no-faithfulness", action="store_true", help="skip comprehensiveness / sufficiency / gold overlap")
    p.add_argument("--limit", type=int, default=None, help="attribute only the first N rows")
    for s in JOB_SETTINGS:
        if s.name in ("poll_interval_s", "actor_start_timeout_s", "driver_start_timeout_s"):
            continue  # environment only (SALIENT_POLL_INTERVAL_S, ...)
        p.add_argument("--" + s.name.replace("_", "-"), type=type(s.default), default=None,
                       help=f"{s.help} (default {s.default}; env {s.env_var})")
    p.add_argument("--resources", default=None, metavar="JSON",
                   help='custom Ray resources per actor, e.g. \'{"gpu_node": 1}\' (pins actors to nodes offering them)')
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="join this Ray cluster (default: $RAY_ADDRESS, else a private local Ray for the job)")
    p.add_argument("--wait", action="store_true",
                   help="drive the job in this process with a progress bar (default: start a background driver)")
    p.set_defaults(func=cmd_attribute)


def _spec(args, cat):
    from attribution_worker.jobs import JobSpec, load_spec

    runtime = {"actors": args.actors, "num_cpus_per_actor": args.num_cpus_per_actor,
               "max_in_flight_per_actor": args.max_in_flight_per_actor, "max_retries": args.max_retries,
               "actor_resources": json.loads(args.resources) if args.resources else None}
    if args.resume:
        if args.dataset or args.teacher:
            raise ValueError("--resume JOB_ID takes the dataset and teacher from the stored job; drop --dataset/--teacher")
        return load_spec(cat, args.resume, **runtime), args.resume
    if not args.dataset or not args.teacher:
        raise ValueError("give --dataset and --teacher (or --resume JOB_ID)")
    fields = dict(dataset=args.dataset, split=args.split, teacher=args.teacher, method=args.method, k=args.k,
                  target=args.target, template=args.template, token_budget=args.token_budget,
                  max_new_tokens=args.max_new_tokens, n_steps=args.n_steps, max_input_tokens=args.max_input_tokens,
                  faithfulness=not args.no_faithfulness, limit=args.limit, shard_size=args.shard_size, **runtime)
    return JobSpec(**{k: v for k, v in fields.items() if v is not None or k in ("split", "template")}), args.job_id


def cmd_attribute(args) -> int:
    from pydantic import ValidationError

    from attribution_worker.jobs import JobFailed, prepare_job, run_job

    with open_catalog(args) as cat:
        try:
            spec, job_id = _spec(args, cat)
        except ValidationError as exc:
            raise ValueError("; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                                       for e in exc.errors())) from None
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
    log = cat.store.job_dir(spec.dataset, job_id) / "driver.log"
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
