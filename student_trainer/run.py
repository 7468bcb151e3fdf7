"""One training run end to end: rows -> students (x seeds, + baseline) -> metrics, report, registry.

    with Catalog.open(Store.open(root)) as cat:
        result = run_training(cat, TrainConfig(dataset="cqa", compare_baseline=True, seeds=[0, 1, 2]))
    result["run_id"], result["metrics"], result["promoted"]

Re-running with the same --run-id resumes: config.json must match, finished seeds are not redone
(their results are in runs/<id>/work/<variant>-seed<k>/result.json), an interrupted seed continues
from its last checkpoint.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from storage import Catalog, write_json_atomic

from .config import TrainConfig
from .data import load_data
from .evaluate import teacher_accuracy
from .presets import tokenizer_for
from .registry import (new_run_id, now, prepare_run_dir, promote_if_better, publish_run, record_run, save_model,
                       snapshot_of)
from .report import write_report
from .train import FitResult, fit


def _stat(values: list[float | None]) -> dict | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0, "n": len(vals),
            "values": vals}


def _paired(results: dict) -> dict | None:
    """Per-seed student - baseline test accuracy (same seed = same rows and order): mean / std / values."""
    base = {r["seed"]: r["test_accuracy"] for r in results["baseline"]}
    diffs = [r["test_accuracy"] - base[r["seed"]] for r in results["student"]
             if r["test_accuracy"] is not None and base.get(r["seed"]) is not None]
    return _stat(diffs)


def run_training(catalog: Catalog, cfg: TrainConfig, *, run_id: str | None = None, promote: bool = True,
                 stop_after_step: int | None = None, snapshot: str | None = None) -> dict:
    """Train cfg's student for every seed (and the baseline), write the run, maybe promote it."""
    data = load_data(catalog, cfg)
    snapshot = snapshot or snapshot_of(data.shard_paths, cfg)
    run_id = run_id or new_run_id(cfg.dataset)
    run_dir = prepare_run_dir(catalog, run_id, cfg)
    created = now()
    base_row = {"run_id": run_id, "dataset": cfg.dataset, "student": cfg.student, "path": catalog.store.relative(catalog.store.run_dir(run_id)),
                "config": cfg.to_dict(), "snapshot": snapshot, "is_current": False, "created_at": created}
    record_run(catalog, {**base_row, "status": "running"})
    tokenizer = tokenizer_for(cfg.student, cfg.tokenizer, data.texts(), saved=run_dir / "work" / "tokenizer",
                              checkpoint=cfg.checkpoint)
    save_model(None, tokenizer, run_dir / "work" / "tokenizer")
    variants = {"student": (cfg.label_weight, cfg.kd_weight)}  # (a, w)
    if cfg.compare_baseline:
        variants["baseline"] = (1.0, 0.0)  # plain fine-tuning: label-only, no distillation
    results: dict[str, list[FitResult | dict]] = {v: [] for v in variants}
    best_val = -1.0  # the best student seed so far is saved to runs/<id>/model as soon as it finishes
    try:
        for variant, (a, w) in variants.items():
            for seed in cfg.seeds:
                work = run_dir / "work" / f"{variant}-seed{seed}"
                done = work / "result.json"
                if done.exists():
                    results[variant].append(json.loads(done.read_text()))
                    if variant == "student":
                        best_val = max(best_val, results[variant][-1]["val_accuracy"])
                    continue
                res = fit(cfg, data, tokenizer, seed=seed, label_weight=a, kd_weight=w, work_dir=work,
                          stop_after_step=stop_after_step, desc=f"{variant} seed {seed}")
                if variant == "student" and res.val_accuracy > best_val:
                    save_model(res.model, tokenizer, run_dir / "model")
                    best_val = res.val_accuracy
                write_json_atomic({**res.summary(), "history": res.history}, done)
                results[variant].append({**res.summary(), "history": res.history})
    except BaseException as exc:
        record_run(catalog, {**base_row, "status": "failed" if not isinstance(exc, KeyboardInterrupt) else "interrupted",
                             "finished_at": now()})
        raise
    scorer = cfg.resolved_scorer
    metrics = {
        "run_id": run_id, "dataset": cfg.dataset, "student": cfg.student, "scorer": scorer, "seeds": cfg.seeds,
        "val_source": data.val_source, "counts": data.counts, "snapshot": snapshot,
        "variants": {
            v: {"label_weight": a, "kd_weight": w,
                "val_accuracy": _stat([r["val_accuracy"] for r in results[v]]),
                "test_accuracy": _stat([r["test_accuracy"] for r in results[v]]),
                "per_seed": [{k: r[k] for k in ("seed", "val_accuracy", "test_accuracy", "best_step", "steps_done",
                                                "stopped_early", "seconds")} for r in results[v]]}
            for v, (a, w) in variants.items()},
        "paired_test_difference": _paired(results) if cfg.compare_baseline else None,
        "teacher": {"val_accuracy": teacher_accuracy(data.val, scorer), "test_accuracy": teacher_accuracy(data.test, scorer)},
    }
    write_json_atomic(metrics, run_dir / "metrics.json")
    write_report(run_dir, metrics, {v: [r["history"] for r in results[v]] for v in variants})
    val_score = metrics["variants"]["student"]["val_accuracy"]["mean"]
    row = {**base_row, "status": "succeeded", "metrics": metrics, "val_score": val_score, "finished_at": now()}
    publish_run(catalog, run_id)  # an s3:// store: the run's files before its run.json says succeeded
    record_run(catalog, row)
    promoted, why = (False, "promotion off")
    if promote:
        promoted, why = promote_if_better(catalog, run_id, cfg.dataset, cfg.student, val_score)
    return {"run_id": run_id, "run_dir": str(run_dir), "metrics": metrics, "promoted": promoted, "promotion": why,
            "snapshot": snapshot}
