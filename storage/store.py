"""The store layout (DESIGN.md "Store layout"): one root directory, Parquet files are the truth.

    <root>/catalog.duckdb
    <root>/datasets/<name>/<version>/part-00000.parquet
    <root>/rationales/dataset=<name>/job=<job_id>/shard-00000.parquet   (+ job.json: the job spec)
    <root>/runs/<run_id>/{config.json, metrics.json, report.html, model/, run.json}
    <root>/runs/_current/<dataset>--<student>.json                        (promotion pointer)

The root comes from --store, else $SALIENT_STORE, else ./salient-data. A root such as
`s3://bucket/prefix` puts the same layout on object storage (storage.objects); catalog.duckdb then
stays on the local disk of the one writer (setting `catalog_path`), and so do the few scratch files
a writer needs (`local_dir`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .objects import ObjectPath, is_remote
from .settings import get_setting

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


def resolve_root(store: str | os.PathLike | ObjectPath | None = None) -> Path | ObjectPath:
    """A local directory as an absolute Path, or an `s3://bucket/prefix` root as an ObjectPath."""
    raw = store or os.environ.get(STORE_ENV) or DEFAULT_STORE
    if isinstance(raw, ObjectPath):
        return raw
    if is_remote(str(raw)):
        return ObjectPath.parse(str(raw))
    return Path(raw).expanduser().resolve()


def _local_catalog_dir(root: ObjectPath) -> Path:
    return Path("~/.cache/salient/catalogs").expanduser() / root.key


@dataclass(frozen=True)
class Store:
    root: Path | ObjectPath

    @classmethod
    def open(cls, store: str | os.PathLike | ObjectPath | None = None, create: bool = True) -> "Store":
        root = resolve_root(store)
        if isinstance(root, ObjectPath):
            return cls._open_remote(root)
        if create:
            root.mkdir(parents=True, exist_ok=True)
        elif not root.is_dir():
            raise FileNotFoundError(f"store {root} does not exist: pass --store or set {STORE_ENV}")
        store = cls(root)
        store.catalog_path.parent.mkdir(parents=True, exist_ok=True)  # the root itself unless catalog_path is set
        return store

    @classmethod
    def _open_remote(cls, root: ObjectPath) -> "Store":
        """An s3:// store: its bucket must exist (salient creates no buckets); the prefix needs nothing."""
        bucket = ObjectPath(root.bucket)
        try:
            found = bucket.is_dir()
        except OSError as exc:
            raise FileNotFoundError(
                f"store {root}: the object store does not answer ({str(exc).splitlines()[0]}); check "
                "SALIENT_S3_ENDPOINT_URL, SALIENT_S3_REGION and the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                "credentials") from None
        if not found:
            raise FileNotFoundError(f"store {root}: bucket {root.bucket!r} does not exist; create it "
                                    "(salient never creates buckets) or fix --store / SALIENT_STORE")
        store = cls(root)
        store.catalog_path.parent.mkdir(parents=True, exist_ok=True)
        return store

    @property
    def remote(self) -> bool:
        return isinstance(self.root, ObjectPath)

    @property
    def catalog_path(self) -> Path:
        """catalog.duckdb: the `catalog_path` setting, else <root>/catalog.duckdb (a local root) or a local
        cache directory named after the bucket and prefix (an s3:// root)."""
        configured = str(get_setting("catalog_path")).strip()
        if configured:
            return Path(configured).expanduser().resolve()
        if self.remote:
            return _local_catalog_dir(self.root) / "catalog.duckdb"
        return self.root / "catalog.duckdb"

    @property
    def local_dir(self) -> Path:
        """The writer's local directory: the root itself for a local store, the catalog's directory for an
        s3:// one (ingest's scratch files, job driver logs)."""
        return self.catalog_path.parent if self.remote else self.root

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

    def driver_log_path(self, dataset: str, job_id: str) -> Path:
        """The background job driver's log: beside the shards in a local store, under local_dir for an s3:// one."""
        if self.remote:
            path = self.local_dir / "logs" / f"{check_name('dataset', dataset)}--{check_name('job', job_id)}.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            return path
        return self.job_dir(dataset, job_id) / "driver.log"

    def job_spec_path(self, dataset: str, job_id: str) -> Path:
        return self.job_dir(dataset, job_id) / "job.json"

    # runs
    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_name("run", run_id)

    @property
    def local_runs_dir(self) -> Path:
        """Where runs are trained: runs/ itself for a local store; for an s3:// store a local directory whose
        finished runs are uploaded to runs/ (student_trainer.registry.publish_run)."""
        return self.local_dir / "runs" if self.remote else self.runs_dir

    def run_work_dir(self, run_id: str) -> Path:
        """The local directory a run is trained in (its checkpoints stay here; for a local store = run_dir)."""
        return self.local_runs_dir / check_name("run", run_id)

    def run_record_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "run.json"

    def current_pointer_path(self, dataset: str, student: str) -> Path:
        safe_student = re.sub(r"[^A-Za-z0-9_.-]", "_", student)
        return self.runs_dir / "_current" / f"{check_name('dataset', dataset)}--{safe_student}.json"

    def relative(self, path: os.PathLike | ObjectPath) -> str:
        """Path as stored in the catalog: relative to the root, '/'-separated. In an s3:// store a local
        path (the catalog file, a scratch file) is given whole."""
        if self.remote:
            return path.relative_to(self.root).as_posix() if isinstance(path, ObjectPath) else str(path)
        return Path(path).resolve().relative_to(self.root).as_posix()

    def absolute(self, rel: str) -> Path | ObjectPath:
        return self.root / rel
