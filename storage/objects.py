"""The store on object storage: a root such as `s3://bucket/prefix`, read and written through pyarrow.

A local store root is a `pathlib.Path`; an object-store root is an `ObjectPath`, which answers the
few questions the store layout asks of a path (`/`, `name`, `parent`, `exists`, `glob`, `stat`,
`read_text`, `relative_to`) with calls on one `pyarrow.fs.S3FileSystem`. Writes never go through
it: `storage.parquet_io.atomic_write` builds the object in a local temporary file and uploads it
once under its final key (`put_file`), so an object appears whole or not at all (S3 PUT and
multipart-complete are atomic; there is no rename on S3 and none is used).

The filesystem comes from settings (`s3_endpoint_url`, whose scheme picks http or https, and
`s3_region`); credentials from
the AWS SDK's standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
~/.aws, an instance role). Salient never reads, stores or logs the secret itself.

    root = ObjectPath.parse("s3://salient/prod")
    (root / "datasets").glob("*/*/part-*.parquet")   # -> [ObjectPath, ...]
    arrow_dataset([root / "rationales/.../shard-00000.parquet"])   # a pyarrow dataset DuckDB can scan
"""
from __future__ import annotations

import fnmatch
import os
import posixpath
import shutil
import threading
from dataclasses import dataclass
from pathlib import PurePosixPath

from .settings import get_setting

# pyarrow.fs / pyarrow.dataset are imported where used: a local store never needs them, and loading
# pyarrow.dataset under pyarrow's default mimalloc pool reserves about 1 GB of address space, which the
# SQL worker's RLIMIT_DATA counts (storage.sql_worker starts it with the system allocator).

SCHEME = "s3://"
_COPY_BYTES = 8 * 1024 * 1024
_FS: dict[tuple, "pafs.FileSystem"] = {}
_FS_LOCK = threading.Lock()


def is_remote(root) -> bool:
    """True for an object-store root (`s3://...` text or an ObjectPath)."""
    return isinstance(root, ObjectPath) or (isinstance(root, str) and root.startswith(SCHEME))


def s3_filesystem() -> pafs.S3FileSystem:
    """The S3 filesystem of the current settings (one per endpoint/region/scheme per process).

    Credentials are not passed: the AWS SDK reads them from its standard chain, so they never
    pass through salient's settings, logs or error messages.
    """
    import pyarrow.fs as pafs

    endpoint = str(get_setting("s3_endpoint_url")).strip()
    region = str(get_setting("s3_region")).strip()
    key = (endpoint, region, os.environ.get("AWS_ACCESS_KEY_ID", ""))
    with _FS_LOCK:
        fs = _FS.get(key)
        if fs is None:
            kwargs = {"region": region} if region else {}
            if endpoint:
                scheme, _, host = endpoint.partition("://")
                if not host:
                    raise ValueError(f"s3_endpoint_url={endpoint!r} needs a scheme: use e.g. http://127.0.0.1:9000 "
                                     "or https://s3.example.com (SALIENT_S3_ENDPOINT_URL)")
                kwargs.update(endpoint_override=host.rstrip("/"), scheme=scheme)
            fs = _FS[key] = pafs.S3FileSystem(**kwargs)
        return fs


@dataclass(frozen=True)
class ObjectStat:
    st_size: int
    st_mtime_ns: int


@dataclass(frozen=True)
class ObjectPath:
    """`s3://bucket/key...` as a path; `key` is pyarrow's form, "bucket/key..." (no scheme, no trailing '/')."""

    key: str

    @classmethod
    def parse(cls, uri: str) -> "ObjectPath":
        if not uri.startswith(SCHEME):
            raise ValueError(f"{uri!r} is not an object-store URI: use s3://bucket/prefix")
        key = posixpath.normpath(uri[len(SCHEME):]).strip("/")
        if not key or key.startswith("..") or key == ".":
            raise ValueError(f"{uri!r} names no bucket: use s3://bucket/prefix")
        return cls(key)

    # --- pure path operations
    def __str__(self) -> str:
        return SCHEME + self.key

    def __truediv__(self, other: str) -> "ObjectPath":
        other = str(other).strip("/")
        if not other:
            return self
        if ".." in PurePosixPath(other).parts:
            raise ValueError(f"{other!r} would leave {self}: object paths take no '..'")
        return ObjectPath(f"{self.key}/{other}")

    def __lt__(self, other: "ObjectPath") -> bool:
        return self.key < other.key

    @property
    def bucket(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> "ObjectPath":
        return ObjectPath(self.key.rsplit("/", 1)[0]) if "/" in self.key else self

    def with_name(self, name: str) -> "ObjectPath":
        return self.parent / name

    def as_posix(self) -> str:
        return str(self)

    def resolve(self) -> "ObjectPath":
        return self

    def expanduser(self) -> "ObjectPath":
        return self

    def relative_to(self, other: "ObjectPath") -> PurePosixPath:
        if not isinstance(other, ObjectPath) or not (self.key == other.key or self.key.startswith(other.key + "/")):
            raise ValueError(f"{self} is not under {other}")
        return PurePosixPath(self.key[len(other.key):].lstrip("/") or ".")

    # --- questions to the object store
    def info(self) -> pafs.FileInfo:
        return s3_filesystem().get_file_info(self.key)

    def exists(self) -> bool:
        return self.info().type.name != "NotFound"

    def is_dir(self) -> bool:
        return self.info().type.name == "Directory"

    def is_file(self) -> bool:
        return self.info().type.name == "File"

    def stat(self) -> ObjectStat:
        info = self.info()
        if info.type.name == "NotFound":
            raise FileNotFoundError(f"no object {self}")
        return ObjectStat(int(info.size or 0), int(info.mtime_ns or 0))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to create: an object store has no directories (a key's prefixes exist with it)."""

    def read_bytes(self) -> bytes:
        with s3_filesystem().open_input_stream(self.key) as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def open_input(self):
        """A random-access pyarrow file (Parquet readers seek to the footer)."""
        return s3_filesystem().open_input_file(self.key)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            s3_filesystem().delete_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def _below(self) -> list[pafs.FileInfo]:
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.key, allow_not_found=True, recursive=True)
        return s3_filesystem().get_file_info(selector)

    def glob(self, pattern: str) -> list["ObjectPath"]:
        """Keys below this one whose relative path matches `pattern` segment by segment (one listing)."""
        parts = pattern.strip("/").split("/")
        out = []
        for info in self._below():
            rel = info.path[len(self.key) + 1:].split("/")
            if len(rel) == len(parts) and all(fnmatch.fnmatchcase(r, p) for r, p in zip(rel, parts)):
                out.append(ObjectPath(info.path))
        return sorted(out)

    def rglob(self, pattern: str) -> list["ObjectPath"]:
        """Objects at any depth below this one whose name matches `pattern`."""
        return sorted(ObjectPath(i.path) for i in self._below()
                      if i.type.name == "File" and fnmatch.fnmatchcase(i.base_name, pattern))


def list_stats(paths: list[ObjectPath]) -> dict[str, ObjectStat]:
    """{key: stat} of those of `paths` that exist, from one listing per parent prefix (not one HEAD per
    object: a view over a job's 1,000 shards costs one LIST request)."""
    import pyarrow.fs as pafs

    fs = s3_filesystem()
    wanted = {p.key for p in paths}
    out: dict[str, ObjectStat] = {}
    for parent in sorted({p.parent.key for p in paths}):
        for info in fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True)):
            if info.path in wanted and info.type.name == "File":
                out[info.path] = ObjectStat(int(info.size or 0), int(info.mtime_ns or 0))
    return out


def put_file(local_file, target: ObjectPath) -> None:
    """Upload the open local file `local_file` (from its start) as `target`, in one object write.

    The object becomes visible when the upload completes (S3 PUT / CompleteMultipartUpload), whole. A
    failed part upload fails the close, so nothing appears. pyarrow's stream has no abort: if reading the
    local file fails mid-way, closing would publish what was sent, so the object is then deleted again.
    """
    local_file.seek(0)
    fs = s3_filesystem()
    out = fs.open_output_stream(target.key)
    try:
        shutil.copyfileobj(local_file, out, _COPY_BYTES)
    except BaseException:
        try:
            out.close()
            fs.delete_file(target.key)
        except OSError:
            pass
        raise
    out.close()


def upload_tree(local_dir, target: ObjectPath, *, skip: tuple[str, ...] = ()) -> list[ObjectPath]:
    """Upload every file under `local_dir` (symlinks followed) to the same relative key under `target`,
    each in one object write; top-level entries named in `skip` are left out. Returns the objects written."""
    from pathlib import Path

    local_dir = Path(local_dir)
    written = []
    for here, dirs, files in os.walk(local_dir, followlinks=True):  # model/ is a symlink (parquet_io.atomic_dir)
        base = Path(here).relative_to(local_dir)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (base == Path(".") and d in skip))
        for name in sorted(f for f in files if not f.startswith(".")):
            key = target / (base / name).as_posix()
            with open(Path(here) / name, "rb") as fh:
                put_file(fh, key)
            written.append(key)
    return written


def copy_object(source: ObjectPath, target: ObjectPath) -> None:
    s3_filesystem().copy_file(source.key, target.key)


def parquet_source(path):
    """What pyarrow.parquet readers take for `path`: an open S3 file for an ObjectPath, else the path."""
    return path.open_input() if isinstance(path, ObjectPath) else path


def arrow_dataset(paths: list[ObjectPath], schema=None) -> ds.Dataset:
    """The Parquet objects `paths` as one pyarrow dataset over the S3 filesystem (DuckDB scans it as a
    registered relation, so no DuckDB extension and no path reaches user SQL). Columns are the union of
    the files' schemas (or `schema`, when the caller knows it); a file lacking a column reads it as NULL."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    fs = s3_filesystem()
    if schema is None:
        schemas = [pq.read_schema(fs.open_input_file(p.key)) for p in paths]
        schema = schemas[0] if all(s.equals(schemas[0]) for s in schemas) else _unify(schemas)
    # from_paths: no request per file here (ds.dataset would stat each one); objects are opened when scanned
    return ds.FileSystemDataset.from_paths([p.key for p in paths], schema=schema, format=ds.ParquetFileFormat(),
                                           filesystem=fs)


def _unify(schemas):
    import pyarrow as pa

    return pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
