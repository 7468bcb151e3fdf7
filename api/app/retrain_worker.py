"""The child process of `POST /v1/retrain`: run one retrain and write its outcome beside its log.

    python -m api.app.retrain_worker --store DIR --retrain-id ID --request '{"config": {...}, "force": false}'

Writes `<store>/runs/_retrain/<ID>.json` ({status: trained | skipped | failed, ...}) atomically.
"""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from storage import Catalog, Store
    from storage.parquet_io import write_json_atomic
    from student_trainer.config import TrainConfig
    from student_trainer.schedule import retrain

    p = argparse.ArgumentParser(prog="python -m api.app.retrain_worker")
    p.add_argument("--store", required=True)
    p.add_argument("--retrain-id", required=True)
    p.add_argument("--request", required=True, help="JSON: {config: TrainConfig fields, force: bool}")
    args = p.parse_args(argv)
    request = json.loads(args.request)
    store = Store.open(args.store)
    target = store.local_runs_dir / "_retrain" / f"{args.retrain_id}.json"
    try:
        with Catalog.open(store) as catalog:
            outcome = retrain(catalog, TrainConfig.from_dict(request["config"]), force=bool(request.get("force")))
        keep = ("status", "reason", "snapshot", "run_id", "run_dir", "promoted", "promotion")
        result = {k: outcome.get(k) for k in keep if k in outcome}
        write_json_atomic({**result, "status": outcome["status"]}, target)
        return 0
    except Exception as exc:
        write_json_atomic({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, target)
        print(f"retrain failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
