"""Atomic file writes: a file appears whole or not at all (STYLE.md 6).

Write to `<name>.<random>.tmp` in the same directory, flush + fsync, rename over the target,
fsync the directory. A process killed before the rename leaves only a *.tmp file, which no
reader globs (readers look for *.parquet / *.json) and `sweep_tmp` removes.

On object storage (an `storage.objects.ObjectPath`, a store root such as s3://bucket/prefix) there is
no rename: the file is built in a local temporary file and uploaded once under its final key, and
the object store makes it visible whole when the upload completes.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from .objects import ObjectPath, is_remote, parquet_source, put_file

# Row groups sized for scans: large enough for DuckDB's parallel scan, small enough to stream.
DEFAULT_ROW_GROUP_SIZE = 64_000
COMPRESSION = "zstd"


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def as_path(path: str | os.PathLike | ObjectPath) -> Path | ObjectPath:
    """A Path, or an ObjectPath for an object (`s3://...` text or an ObjectPath)."""
    if isinstance(path, ObjectPath):
        return path
    return ObjectPath.parse(path) if is_remote(path) else Path(path)


def _tmp_for(path: Path) -> tuple[int, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    return fd, Path(tmp)


def _commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_parquet_atomic(
    table: pa.Table,
    path: str | os.PathLike,
    *,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    metadata: dict[str, str] | None = None,
) -> int:
    """Write `table` to `path` atomically; returns the file size in bytes.

    metadata: extra key/value pairs stored in the Parquet footer (read back by `read_metadata`).
    """
    path = as_path(path)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    with atomic_write(path) as fh:
        pq.write_table(table, fh, compression=COMPRESSION, row_group_size=row_group_size)
    return path.stat().st_size


class GroupedParquetWriter:
    """A Parquet file written table by table in row groups of `row_group_size` rows.

    Holds at most one row group plus one incoming table in memory. `close(metadata)` adds footer
    key/value pairs and fsyncs (for a file about to be renamed into place).
    """

    def __init__(self, sink, schema: pa.Schema, *, row_group_size: int = DEFAULT_ROW_GROUP_SIZE):
        self.schema = schema
        self.row_group_size = row_group_size
        self._file = open(sink, "wb") if isinstance(sink, (str, os.PathLike)) else sink
        self._owns_file = isinstance(sink, (str, os.PathLike))
        self._writer = pq.ParquetWriter(self._file, schema, compression=COMPRESSION)
        self._pending: list[pa.Table] = []
        self._rows = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._rows += table.num_rows
        if self._rows >= self.row_group_size:
            merged = pa.concat_tables(self._pending)
            full = self._rows - self._rows % self.row_group_size
            self._writer.write_table(merged.slice(0, full), row_group_size=self.row_group_size)
            rest = merged.slice(full)
            self._pending, self._rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self, metadata: dict[str, str] | None = None, *, sync: bool = False) -> None:
        if self._writer is None:
            return
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=self.row_group_size)
            self._pending, self._rows = [], 0
        if metadata:
            self._writer.add_key_value_metadata(metadata)
        self._writer.close()
        self._writer = None
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())
        if self._owns_file:
            self._file.close()


def write_parquet_batches_atomic(
    tables: Iterable[pa.Table],
    path: str | os.PathLike,
    schema: pa.Schema,
    *,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    metadata: dict[str, str] | None = None,
) -> int:
    """Stream `tables` (each with `schema`) into `path` atomically, in row groups of `row_group_size`.

    Holds at most one row group plus one incoming table in memory; returns the file size in bytes.
    """
    path = as_path(path)
    with atomic_write(path) as fh:
        writer = GroupedParquetWriter(fh, schema, row_group_size=row_group_size)
        try:
            for table in tables:
                writer.write(table)
        except BaseException:
            writer.close()
            raise
        writer.close(metadata)
    return path.stat().st_size


def write_json_atomic(obj, path: str | os.PathLike) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """`with atomic_write(path) as fh: fh.write(...)`: the file appears whole on exit, or not at all.

    The one temp-file-flush-fsync-rename mechanism for any writer that takes a file object
    (torch.save, a report's HTML, matplotlib's savefig with format=...). An exception inside the
    block leaves `path` untouched and removes the temp file. An ObjectPath is uploaded once, on exit.
    """
    path = as_path(path)
    if isinstance(path, ObjectPath):
        with _object_write(path, mode) as fh:
            yield fh
        return
    fd, tmp = _tmp_for(path)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _object_write(path: ObjectPath, mode: str):
    """atomic_write for an object: a local temporary file, uploaded under `path` only when the block ends
    without an exception (the object appears whole when the upload completes; never a partial object)."""
    with tempfile.TemporaryFile() as raw:
        if "b" in mode:
            yield raw
        else:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            yield text
            text.flush()
            text.detach()
        raw.flush()
        put_file(raw, path)


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> None:
    with atomic_write(path) as fh:
        fh.write(data)


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """`with atomic_dir(target) as tmp: model.save_pretrained(tmp)`: the directory swaps in whole.

    `target` becomes a symlink to a sibling `.<name>.<hex>.d` directory holding the new contents; the
    swap is one `os.replace` of a symlink, so a reader at any instant sees the old directory or the
    new one, never a missing or half-written one. The previous version is removed after the swap. An
    exception inside the block leaves `target` as it was. A plain directory already at `target` (a
    store written before this helper) is moved aside and replaced by the link in two renames.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    version = path.with_name(f".{path.name}.{secrets.token_hex(6)}.d")
    version.mkdir()
    try:
        yield version
        for fh_path in version.rglob("*"):
            if fh_path.is_file():
                with open(fh_path, "rb") as fh:
                    os.fsync(fh.fileno())
        fsync_dir(version)
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    old = None
    if path.is_symlink():
        old = path.parent / os.readlink(path)
    elif path.exists():
        old = path.with_name(f".{path.name}.{secrets.token_hex(6)}.old")
        os.replace(path, old)
    link = path.with_name(f".{path.name}.{secrets.token_hex(6)}.link.tmp")
    os.symlink(version.name, link)
    _commit(link, path)
    if old is not None and old.resolve() != version.resolve():
        shutil.rmtree(old, ignore_errors=True)


def read_parquet(path: str | os.PathLike | ObjectPath, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(parquet_source(path), columns=columns)


def read_metadata(path: str | os.PathLike | ObjectPath) -> dict[str, str]:
    """The key/value metadata of a Parquet file's footer, decoded (schema metadata and keys added at close)."""
    meta = pq.read_metadata(parquet_source(path)).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if not k.startswith(b"ARROW")}


def sweep_tmp(root: str | os.PathLike) -> list[Path]:
    """Remove leftover *.tmp files from killed writers under `root`; returns what was removed.

    An object store has none: objects are uploaded whole, never renamed from a temporary name."""
    if isinstance(root, ObjectPath):
        return []
    removed = []
    for tmp in Path(root).rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed
