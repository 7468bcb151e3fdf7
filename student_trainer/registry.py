"""The model registry: run directories, catalog rows, and atomic promotion to `current`.

    <store>/runs/<run_id>/config.json      TrainConfig (written first; a resumed run must match it)
    <store>/runs/<run_id>/metrics.json     per variant / seed / split accuracies, teacher, counts
    <store>/runs/<run_id>/report.html      + curves.png
    <store>/runs/<run_id>/model/           the best rationale student (save_pretrained + tokenizer)
    <store>/runs/<run_id>/run.json         the catalog row (Catalog.rebuild reads it back)
    <store>/runs/_current/<dataset>--<student>.json   {"run_id", "dataset", "student", "val_score", ...}

Promotion (`promote_if_better`): under an exclusive file lock on runs/_current/.lock, a run becomes
current for its (dataset, student) only when no run is current yet or its val_score is strictly
higher than the current one's. The pointer file is written atomically (temp + rename) and then the
catalog's is_current flags are switched in one transaction (Catalog.set_current_run). The pointer
file is the truth: `salient catalog rebuild` restores is_current from it.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import secrets
from contextlib import contextmanager
from pathlib import Path

from storage import Catalog, write_json_atomic
from storage.objects import upload_tree
from storage.parquet_io import atomic_dir

from .config import TrainConfig


def new_run_id(dataset: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{dataset}-{stamp}-{secrets.token_hex(3)}"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def snapshot_of(shard_paths: list[str], cfg: TrainConfig) -> str:
    """Identity of the training data + settings: sha256 of the sorted shard paths and the config fingerprint."""
    h = hashlib.sha256()
    for p in sorted(shard_paths):
        h.update(p.encode() + b"\n")
    h.update(cfg.fingerprint().encode())
    return h.hexdigest()[:24]


def prepare_run_dir(catalog: Catalog, run_id: str, cfg: TrainConfig) -> Path:
    """Create runs/<run_id>/ with config.json; an existing dir must hold the same config (resume).

    In an s3:// store this is the writer's local copy (`Store.run_work_dir`); `publish_run` uploads it."""
    run_dir = catalog.store.run_work_dir(run_id)
    config_path = run_dir / "config.json"
    if config_path.exists():
        saved = TrainConfig.from_dict(json.loads(config_path.read_text()))
        if saved.fingerprint() != cfg.fingerprint():
            raise ValueError(f"--run-id {run_id}: that run exists with different settings ({config_path}); "
                             "resume it with the same flags or pick a new --run-id")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cfg.to_dict(), config_path)
    return run_dir


def save_model(model, tokenizer, target: Path) -> None:
    """save_pretrained (model and/or tokenizer) swapped in whole by storage's `atomic_dir` (one symlink rename).

    model: anything with save_pretrained(dir) (a transformers model or a student_trainer.students wrapper), or None
    to save only the tokenizer.
    """
    with atomic_dir(target) as tmp:
        if model is not None:
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def publish_run(catalog: Catalog, run_id: str) -> None:
    """An s3:// store: upload the finished run (config, metrics, report, model; not work/, whose resume
    checkpoints stay local) to runs/<run_id>/, one object per file. A local store: nothing to do."""
    if catalog.store.remote:
        upload_tree(catalog.store.run_work_dir(run_id), catalog.store.run_dir(run_id), skip=("work",))


def record_run(catalog: Catalog, row: dict) -> None:
    """Write runs/<run_id>/run.json (atomic) and upsert the catalog row."""
    write_json_atomic(row, catalog.store.run_record_path(row["run_id"]))
    catalog.register_run(row)


@contextmanager
def _promotion_lock(catalog: Catalog):
    lock_dir = catalog.store.local_runs_dir / "_current"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def current_run(catalog: Catalog, dataset: str, student: str) -> dict | None:
    """The pointer {run_id, dataset, student, val_score, promoted_at} of the current run, or None."""
    path = catalog.store.current_pointer_path(dataset, student)
    return json.loads(path.read_text()) if path.exists() else None


def promote_if_better(catalog: Catalog, run_id: str, dataset: str, student: str, val_score: float) -> tuple[bool, str]:
    """Make run_id current when it beats the current run on validation; returns (promoted, why)."""
    if val_score is None or val_score != val_score:
        return False, "no validation score"
    with _promotion_lock(catalog):
        cur = current_run(catalog, dataset, student)
        if cur is not None and not val_score > float(cur["val_score"]):
            return False, f"val {val_score:.4f} does not beat current {cur['run_id']} ({float(cur['val_score']):.4f})"
        pointer = {"run_id": run_id, "dataset": dataset, "student": student, "val_score": val_score,
                   "promoted_at": now(), "previous": cur["run_id"] if cur else None}
        write_json_atomic(pointer, catalog.store.current_pointer_path(dataset, student))
        catalog.set_current_run(dataset, student, run_id)
    why = f"beats {cur['run_id']} ({float(cur['val_score']):.4f})" if cur else "first run for this dataset and student"
    return True, why


def list_models(catalog: Catalog, dataset: str | None = None) -> list[dict]:
    """Catalog rows of the runs, newest last, with their headline numbers."""
    rows = []
    for r in catalog.runs(dataset):
        metrics = json.loads(r["metrics"]) if isinstance(r["metrics"], str) else (r["metrics"] or {})
        variants = metrics.get("variants", {})
        rows.append({
            "run_id": r["run_id"], "dataset": r["dataset"], "student": r["student"], "status": r["status"],
            "current": bool(r["is_current"]), "val": r["val_score"],
            "test": (variants.get("student", {}).get("test_accuracy") or {}).get("mean"),
            "baseline_test": (variants.get("baseline", {}).get("test_accuracy") or {}).get("mean"),
            "created_at": r["created_at"],
        })
    return rows
