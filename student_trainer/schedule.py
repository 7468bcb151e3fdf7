"""Nightly retraining: idempotent per data snapshot, and a cron loop for compose deployments.

    outcome = retrain(catalog, TrainConfig(dataset="cqa"))
    outcome["status"]   # "trained" | "skipped" (nothing committed since the last run with these settings)
    run_schedule("0 2 * * *", lambda: retrain(...))     # blocks; one retrain at a time

The snapshot of a dataset is sha256(sorted committed shard paths + TrainConfig.fingerprint()); it is
stored in the run row's `snapshot` column. A retrain whose snapshot already has a succeeded run does
nothing and says so. The Kubernetes CronJob in deploy/k8s/ runs the same `salient retrain`
(concurrencyPolicy: Forbid); `salient schedule --cron` is the in-process equivalent for compose.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Callable

from storage import Catalog

from .config import TrainConfig
from .data import dataset_shards
from .registry import snapshot_of
from .run import run_training


def retrain(catalog: Catalog, cfg: TrainConfig, *, force: bool = False) -> dict:
    """Train cfg unless a succeeded run already covers the current shards with the same settings."""
    paths = dataset_shards(catalog, cfg.dataset, cfg.job)
    if not paths:
        return {"status": "skipped", "reason": f"no committed rationale shards for dataset {cfg.dataset!r}",
                "snapshot": None}
    snapshot = snapshot_of(paths, cfg)
    previous = catalog.query(
        "SELECT run_id FROM runs WHERE dataset = ? AND snapshot = ? AND status = 'succeeded' ORDER BY created_at",
        [cfg.dataset, snapshot])
    if previous and not force:
        return {"status": "skipped", "snapshot": snapshot, "run_id": previous[-1]["run_id"],
                "reason": f"no shards committed since run {previous[-1]['run_id']} (snapshot {snapshot}); nothing to do"}
    result = run_training(catalog, cfg, snapshot=snapshot)
    return {"status": "trained", **result}


def next_fire(cron: str, after: dt.datetime | None = None) -> dt.datetime:
    """The next time (UTC) `cron` fires after `after`; ValueError naming --cron when it does not parse."""
    from croniter import croniter

    if not croniter.is_valid(cron):
        raise ValueError(f"--cron {cron!r}: not a cron expression (five fields, e.g. \"0 2 * * *\" for 02:00 daily)")
    after = after or dt.datetime.now(dt.timezone.utc)
    return croniter(cron, after).get_next(dt.datetime)


def run_schedule(cron: str, job: Callable[[], dict], *, max_runs: int | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], dt.datetime] | None = None,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Run `job` at every fire time of `cron`, one at a time (a late run is not doubled up).

    max_runs: stop after that many runs (None: forever). Returns the outcomes (for tests).
    """
    clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
    outcomes: list[dict] = []
    fire = next_fire(cron, clock())
    while max_runs is None or len(outcomes) < max_runs:
        wait = (fire - clock()).total_seconds()
        log(f"next retrain at {fire.isoformat()} (in {max(0.0, wait):.0f} s)")
        if wait > 0:
            sleep(wait)
        try:
            outcome = job()
        except Exception as exc:  # a failed night must not stop the schedule
            outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        log(f"retrain {outcome['status']}: {outcome.get('reason') or outcome.get('run_id', '')}")
        outcomes.append(outcome)
        fire = next_fire(cron, max(clock(), fire))
    return outcomes
