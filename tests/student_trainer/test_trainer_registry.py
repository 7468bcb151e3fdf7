"""Registry, promotion, idempotent retraining, the cron loop, the CLI and the k8s manifest."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from st_helpers import add_job, tiny_cfg, toy_rows
from student_trainer.registry import current_run, list_models, promote_if_better
from student_trainer.run import run_training
from student_trainer.schedule import next_fire, retrain, run_schedule

REPO = Path(__file__).resolve().parents[2]


def _fake_run(catalog, run_id, val):
    catalog.register_run({"run_id": run_id, "dataset": "toy", "student": "tiny", "status": "succeeded", "val_score": val,
                          "created_at": dt.datetime.now(dt.timezone.utc)})


def test_promotion_only_when_better(catalog):
    for run_id, val in (("r1", 0.6), ("r2", 0.5), ("r3", 0.6), ("r4", 0.7)):
        _fake_run(catalog, run_id, val)
    assert promote_if_better(catalog, "r1", "toy", "tiny", 0.6)[0]
    assert not promote_if_better(catalog, "r2", "toy", "tiny", 0.5)[0]   # worse
    promoted, why = promote_if_better(catalog, "r3", "toy", "tiny", 0.6)  # a tie is not better
    assert not promoted and "does not beat" in why
    assert current_run(catalog, "toy", "tiny")["run_id"] == "r1"
    assert promote_if_better(catalog, "r4", "toy", "tiny", 0.7)[0]
    pointer = current_run(catalog, "toy", "tiny")
    assert pointer["run_id"] == "r4" and pointer["previous"] == "r1"
    current = [r["run_id"] for r in catalog.runs() if r["is_current"]]
    assert current == ["r4"]
    assert not list(catalog.store.current_pointer_path("toy", "tiny").parent.glob(".*.tmp"))


def test_run_rows_survive_catalog_rebuild(toy):
    first = run_training(toy, tiny_cfg())
    assert first["promoted"]
    run_dir = toy.store.run_dir(first["run_id"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["variants"]) == {"student"} and metrics["teacher"]["test_accuracy"] is not None
    assert "<img src=\"curves.png\"" in (run_dir / "report.html").read_text()
    toy.rebuild()
    rows = list_models(toy)
    assert [(r["run_id"], r["current"], r["status"]) for r in rows] == [(first["run_id"], True, "succeeded")]
    assert rows[0]["val"] == pytest.approx(metrics["variants"]["student"]["val_accuracy"]["mean"])


def test_second_retrain_without_new_shards_is_a_noop(toy):
    cfg = tiny_cfg(steps=6, eval_every=6)
    first = retrain(toy, cfg)
    assert first["status"] == "trained"
    second = retrain(toy, cfg)
    assert second["status"] == "skipped" and "no shards committed since run" in second["reason"]
    assert second["run_id"] == first["run_id"] and len(toy.runs()) == 1
    add_job(toy, "toy", "job2", {"train": toy_rows(20, "train", prefix="new")})
    third = retrain(toy, cfg)
    assert third["status"] == "trained" and third["snapshot"] != first["snapshot"]
    assert retrain(toy, cfg)["status"] == "skipped"
    assert len(toy.runs()) == 2


def test_schedule_runs_on_cron_fire_times():
    start = dt.datetime(2026, 1, 1, 1, 30, tzinfo=dt.timezone.utc)
    now = [start]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += dt.timedelta(seconds=seconds)

    calls = []
    outcomes = run_schedule("0 2 * * *", lambda: calls.append(now[0]) or {"status": "skipped", "reason": "same"},
                            max_runs=2, sleep=sleep, clock=lambda: now[0], log=lambda s: None)
    assert [c.isoformat() for c in calls] == ["2026-01-01T02:00:00+00:00", "2026-01-02T02:00:00+00:00"]
    assert slept == [1800.0, 86400.0] and len(outcomes) == 2
    with pytest.raises(ValueError, match="--cron"):
        next_fire("every night")


def test_cli_train_models_ls_and_retrain(toy, capsys):
    from api.cli import main

    store = str(toy.store.root)
    toy.close()  # the CLI is the one catalog writer now
    args = ["--store", store]
    flags = ["--dataset", "toy", "--steps", "6", "--eval-every", "6", "--batch-size", "8", "--max-target-tokens", "4",
             "--no-progress", "--compare-baseline"]
    assert main(args + ["train", *flags, "--run-id", "cli-run"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "teacher" in out and "promoted: yes" in out
    assert main(args + ["retrain", *flags]) == 0  # `train` already covered this snapshot with these settings
    assert "retrain skipped: no shards committed since run cli-run" in capsys.readouterr().out
    assert main(args + ["retrain", *flags, "--force"]) == 0
    assert "promoted:" in capsys.readouterr().out
    assert main(args + ["models", "ls", "--format", "json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["run_id"] for r in listed} >= {"cli-run"} and sum(r["current"] for r in listed) == 1
    assert main(args + ["train", "--dataset", "toy", "--label-weight", "2"]) == 2
    assert "--label-weight" in capsys.readouterr().err


def test_k8s_cronjob_manifest():
    import yaml

    doc = yaml.safe_load((REPO / "deploy" / "k8s" / "retrain-cronjob.yaml").read_text())
    assert doc["kind"] == "CronJob" and doc["spec"]["concurrencyPolicy"] == "Forbid"
    # the manifest's schedule fires daily at 02:00 UTC (a check that can fail: a datetime is always truthy)
    after = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert next_fire(doc["spec"]["schedule"], after) == dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.timezone.utc)
    container = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["salient", "--store"] and "retrain" in container["command"]
