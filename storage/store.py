"""The store layout (DESIGN.md "Store layout"): one root directory, Parquet files are the truth.

    <root>/catalog.duckdb
    <root>/datasets/<name>/<version>/part-00000.parquet
    <root>/rationales/dataset=<name>/job=<job_id>/shard-00000.parquet   (+ job.json: the job spec)
    <root>/runs/<run_id>/{config.json, metrics.json, report.html, model/, run.json}
    <root>/runs/_current/<dataset>--<student>.json                        (promotion pointer)

The root comes from --store, else $SALIENT_STORE, else ./salient-data.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STORE = "./salient-data"
STORE_ENV = "SALIENT_STORE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(kind: str, value: str) -> str:
    """Names become directory names: letters, digits, '_', '.', '-' only."""
    if not _NAME.fullmatch(value or "") or ".." in value:
        raise ValueError(
            f"invalid {kind} name {value!r}: use 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return value


def resolve_root(store: str | os.PathLike | None = None) -> Path:
    return Path(store or os.environ.get(STORE_ENV) or DEFAULT_STORE).expanduser().resolve()


@dataclass(frozen=True)
class Store:
    root: Path

    @classmethod
    def open(cls, store: str | os.PathLike | None = None, create: bool = True) -> "Store":
        root = resolve_root(store)
        if create:
            root.mkdir(parents=True, exist_ok=True)
        elif not root.is_dir():
            raise FileNotFoundError(f"store {root} does not exist: pass --store or set {STORE_ENV}")
        return cls(root)

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    # datasets
    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    def dataset_dir(self, name: str, version: str) -> Path:
        return self.datasets_dir / check_name("dataset", name) / check_name("version", version)

    def dataset_part(self, name: str, version: str, index: int) -> Path:
        return self.dataset_dir(name, version) / f"part-{index:05d}.parquet"

    # rationales
    @property
    def rationales_dir(self) -> Path:
        return self.root / "rationales"

    def job_dir(self, dataset: str, job_id: str) -> Path:
        return self.rationales_dir / f"dataset={check_name('dataset', dataset)}" / f"job={check_name('job', job_id)}"

    def shard_path(self, dataset: str, job_id: str, index: int) -> Path:
        return self.job_dir(dataset, job_id) / f"shard-{index:05d}.parquet"

    def job_spec_path(self, dataset: str, job_id: str) -> Path:
        return self.job_dir(dataset, job_id) / "job.json"

    # runs
    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_name("run", run_id)

    def run_record_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "run.json"

    def current_pointer_path(self, dataset: str, student: str) -> Path:
        safe_student = re.sub(r"[^A-Za-z0-9_.-]", "_", student)
        return self.runs_dir / "_current" / f"{check_name('dataset', dataset)}--{safe_student}.json"

    def relative(self, path: os.PathLike) -> str:
        """Path as stored in the catalog: relative to the root, '/'-separated."""
        return Path(path).resolve().relative_to(self.root).as_posix()

    def absolute(self, rel: str) -> Path:
        return self.root / rel
