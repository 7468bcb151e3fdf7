"""`salient train | retrain | schedule | models ls`: student training and the model registry.

Flags of train/retrain/schedule are generated from student_trainer.config.TrainConfig, one per
field, with the field's docstring as help (STYLE.md 3, 4); this module only parses and calls
student_trainer.
"""
from __future__ import annotations

import argparse
import dataclasses
import json

from student_trainer.config import TrainConfig, field_docs

from .common import open_catalog, print_rows

_SKIP = {"dataset", "extra"}
_TRAIN_EPILOG = """\
examples:
  salient train --dataset cqa --compare-baseline --seeds 0 1 2
  salient train --dataset cqa --student small --steps 2000 --where "teacher_correct" --labels teacher
  salient train --dataset svamp --run-id svamp-try1          # re-run the same command to resume it
"""


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    docs = field_docs()
    p.add_argument("--dataset", required=True, help=docs["dataset"])
    for f in dataclasses.fields(TrainConfig):
        if f.name in _SKIP:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_ = f"{docs.get(f.name, '')} (default: {default})"
        ann = str(f.type)
        if ann == "bool":
            if default:
                p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false", help=help_)
            else:
                p.add_argument(flag, dest=f.name, action="store_true", help=help_)
        elif ann.startswith("list[int]"):
            p.add_argument(flag, dest=f.name, type=int, nargs="+", default=default, help=help_)
        else:
            kind = int if ann.startswith("int") else float if ann.startswith("float") else str
            p.add_argument(flag, dest=f.name, type=kind, default=default, help=help_)


def config_from_args(args) -> TrainConfig:
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "extra"]
    return TrainConfig(**{n: getattr(args, n) for n in names})


def register(sub) -> None:
    t = sub.add_parser("train", help="train a student on rationale shards (DSS multi-task), optionally with a baseline",
                       epilog=_TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_flags(t)
    t.add_argument("--run-id", help="name the run (re-running with the same id resumes it); default: <dataset>-<time>-<hex>")
    t.add_argument("--no-promote", dest="promote", action="store_false", help="never make this run current")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("retrain", help="train again unless nothing was committed since the last run (idempotent)")
    _add_config_flags(r)
    r.add_argument("--force", action="store_true", help="train even when the data snapshot is unchanged")
    r.set_defaults(func=cmd_retrain)

    s = sub.add_parser("schedule", help="run `retrain` on a cron schedule (compose deployments; blocks)")
    _add_config_flags(s)
    s.add_argument("--cron", required=True, help='cron expression in UTC, e.g. "0 2 * * *" (02:00 daily)')
    s.add_argument("--max-runs", type=int, default=None, help="stop after this many retrains (default: run forever)")
    s.set_defaults(func=cmd_schedule)

    m = sub.add_parser("models", help="the model registry")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    ls = msub.add_parser("ls", help="list training runs; `current` marks the promoted run per (dataset, student)")
    ls.add_argument("--dataset", help="only this dataset")
    ls.add_argument("--format", choices=("table", "csv", "json"), default="table")
    ls.set_defaults(func=cmd_models_ls)


def _print_result(result: dict) -> None:
    m = result["metrics"]
    rows = []
    for name, v in m["variants"].items():
        rows.append({"model": name, "val": (v["val_accuracy"] or {}).get("mean"), "val_std": (v["val_accuracy"] or {}).get("std"),
                     "test": (v["test_accuracy"] or {}).get("mean"), "test_std": (v["test_accuracy"] or {}).get("std")})
    rows.append({"model": "teacher", "val": m["teacher"]["val_accuracy"], "test": m["teacher"]["test_accuracy"]})
    print_rows(rows, ["model", "val", "val_std", "test", "test_std"])
    print(f"run {result['run_id']}: {result['run_dir']} (rows: {json.dumps(m['counts'])})")
    print(f"promoted: {'yes' if result['promoted'] else 'no'} ({result['promotion']})")


def cmd_train(args) -> int:
    from student_trainer.run import run_training

    cfg = config_from_args(args)
    with open_catalog(args) as cat:
        _print_result(run_training(cat, cfg, run_id=args.run_id, promote=args.promote))
    return 0


def cmd_retrain(args) -> int:
    from student_trainer.schedule import retrain

    cfg = config_from_args(args)
    with open_catalog(args) as cat:
        outcome = retrain(cat, cfg, force=args.force)
    if outcome["status"] == "skipped":
        print(f"retrain skipped: {outcome['reason']}")
    else:
        _print_result(outcome)
    return 0


def cmd_schedule(args) -> int:
    from student_trainer.schedule import next_fire, retrain, run_schedule

    cfg = config_from_args(args)
    next_fire(args.cron)  # validate before blocking

    def job() -> dict:
        with open_catalog(args) as cat:  # open per run: the catalog stays free between nights
            return retrain(cat, cfg)

    outcomes = run_schedule(args.cron, job, max_runs=args.max_runs, log=lambda s: print(s, flush=True))
    return 1 if any(o["status"] == "failed" for o in outcomes) else 0


def cmd_models_ls(args) -> int:
    from student_trainer.registry import list_models

    with open_catalog(args) as cat:
        rows = list_models(cat, args.dataset)
    print_rows(rows, ["run_id", "dataset", "student", "status", "current", "val", "test", "baseline_test", "created_at"],
               fmt=args.format)
    return 0
