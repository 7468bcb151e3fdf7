"""Bounded, streaming source readers: a file -> (location, record dict) one record at a time.

Nothing here holds more than one line (JSONL, CSV) or one record batch (Parquet) in memory:

* `bounded_lines` reads with `readline(limit + 1)`, so a line longer than
  `ingest_max_line_bytes` is refused with its line number after reading at most limit + 1 bytes
  of it (an endless line such as /dev/zero included);
* JSON Lines records are parsed one line at a time; NaN, Infinity and numbers that overflow to
  infinity are refused (`parse_constant`, `parse_float`);
* a file whose first non-blank byte is `[` is one JSON array, read whole only up to
  `ingest_max_line_bytes` (a bigger one must be converted to JSON Lines);
* CSV rows go through the csv module over the bounded lines (all values are strings);
* Parquet is read with `ParquetFile.iter_batches`; a float column holding NaN or an infinity is
  refused with its row.

Every reader feeds the bytes it reads to a `ContentHash` (storage.ingest's version hash), so the
file is read once. Locations are `<file>:<line>` (or `<file>:row <i>` for Parquet, `item <i>`
for arrays). Errors are ValueError naming the location and the fix; nothing is written by them.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FIX = "fix the record (or remove it) and run `salient datasets add` again; nothing was written"

Record = tuple[str, dict]  # (location label such as "12" or "row 3", record)


class ContentHash:
    """sha256 over a description of the options, then each file as (length, bytes).

    The length is the file size from stat (so the bytes can be hashed as they stream); a file
    that grows or shrinks while it is read is refused.
    """

    def __init__(self, description: dict):
        self._h = hashlib.sha256(b"salient-ingest-v1\n")
        self._h.update(json.dumps(description, sort_keys=True).encode() + b"\n")
        self._expected: int | None = None
        self._seen = 0
        self._path: Path | None = None

    def begin(self, path: Path, f: BinaryIO) -> None:
        st = os.fstat(f.fileno())
        self._expected = st.st_size if stat.S_ISREG(st.st_mode) else None
        self._seen, self._path = 0, path
        self._h.update((self._expected or 0).to_bytes(8, "little"))

    def add(self, data: bytes) -> None:
        """One whole blob (e.g. a PaLM output file) as (length, bytes)."""
        self._h.update(len(data).to_bytes(8, "little"))
        self._h.update(data)

    def update(self, data: bytes) -> None:
        self._seen += len(data)
        self._h.update(data)

    def end(self) -> None:
        if self._expected is not None and self._seen != self._expected:
            raise ValueError(f"{self._path} changed while it was read ({self._expected} bytes at the start, "
                             f"{self._seen} read); ingest it again once it is complete; nothing was written")

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def where(path: Path, line: int | str) -> str:
    return f"{path}:{line}"


def _too_long(path: Path, lineno: int, max_bytes: int) -> ValueError:
    return ValueError(
        f"{where(path, lineno)}: line is longer than ingest_max_line_bytes={max_bytes} bytes (reading stopped "
        "there; raise SALIENT_INGEST_MAX_LINE_BYTES if it is meant to be that long); nothing was written")


def line_blocks(f: BinaryIO, path: Path, max_bytes: int, digest: ContentHash,
                chunk_bytes: int = 1 << 22) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, lines without their newline) per chunk read; a line over max_bytes
    (a trailing \\r aside) is refused as soon as that many bytes of it have been read."""
    lineno = 0  # lines yielded so far
    carry = b""
    while True:
        chunk = f.read(chunk_bytes)
        if not chunk:
            break
        digest.update(chunk)
        lines = (carry + chunk if carry else chunk).split(b"\n")
        carry = lines.pop()
        if lines and max(map(len, lines)) > max_bytes:
            for i, line in enumerate(lines):
                if len(line) - line.endswith(b"\r") > max_bytes:
                    raise _too_long(path, lineno + i + 1, max_bytes)
        if len(carry) > max_bytes + 1:
            raise _too_long(path, lineno + len(lines) + 1, max_bytes)
        if lines:
            yield lineno + 1, lines
            lineno += len(lines)
    if carry:
        if len(carry) - carry.endswith(b"\r") > max_bytes:
            raise _too_long(path, lineno + 1, max_bytes)
        yield lineno + 1, [carry]


def bounded_lines(f: BinaryIO, path: Path, max_bytes: int, digest: ContentHash) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its newline) for every line, from line_blocks."""
    for first, lines in line_blocks(f, path, max_bytes, digest):
        for i, line in enumerate(lines):
            yield first + i, line[:-1] if line.endswith(b"\r") else line


def _refuse_constant(token: str):
    raise ValueError(f"{token} is not allowed (NaN and infinities are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows to infinity (NaN and infinities are refused)")
    return value


def loads(data: bytes | str):
    """json.loads refusing NaN, Infinity and overflowing numbers."""
    return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)


def _json_error(path: Path, loc, exc: Exception, what: str = "invalid JSON") -> ValueError:
    if isinstance(exc, json.JSONDecodeError):
        reason = f"{what} ({exc.msg}, column {exc.colno})"
    elif isinstance(exc, UnicodeDecodeError):
        reason = f"not UTF-8 ({exc.reason})"
    else:
        reason = str(exc)
    return ValueError(f"{where(path, loc)}: {reason}; {FIX}")


def read_json_records(path: Path, max_bytes: int, digest: ContentHash) -> Iterator[Record]:
    """Records of a JSON Lines file (or of one JSON array up to max_bytes)."""
    with open(path, "rb", buffering=1 << 20) as f:
        digest.begin(path, f)
        if f.peek(4096)[:4096].lstrip()[:1] == b"[":
            yield from _json_array(f, path, max_bytes, digest)
        else:
            for lineno, raw in bounded_lines(f, path, max_bytes, digest):
                if not raw.strip():
                    continue
                try:
                    obj = loads(raw)
                except ValueError as exc:
                    raise _json_error(path, lineno, exc) from None
                if not isinstance(obj, dict):
                    raise ValueError(f"{where(path, lineno)}: expected a JSON object, got {type(obj).__name__}; {FIX}")
                yield str(lineno), obj
        digest.end()


def _json_array(f: BinaryIO, path: Path, max_bytes: int, digest: ContentHash) -> Iterator[Record]:
    data = f.read(max_bytes + 1)
    digest.update(data)
    if len(data) > max_bytes or f.peek(1):
        raise ValueError(f"{path}: a JSON array source is read whole and this one is over ingest_max_line_bytes="
                         f"{max_bytes} bytes; convert it to JSON Lines (one object per line) or raise "
                         "SALIENT_INGEST_MAX_LINE_BYTES; nothing was written")
    try:
        items = loads(data)
    except ValueError as exc:
        loc = exc.lineno if isinstance(exc, json.JSONDecodeError) else "array"
        raise _json_error(path, loc, exc, "invalid JSON array") from None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: item {i} is {type(item).__name__}, expected a JSON object; {FIX}")
        yield str(i + 1), item


def json_line_batches(path: Path, max_bytes: int, batch_rows: int,
                      digest: ContentHash) -> Iterator[tuple[list[int], list[bytes]] | list[Record]]:
    """Batches of a JSON Lines file as (line numbers, raw non-blank lines), for a fast Arrow parse with
    the per-line `loads` as the fallback; a JSON array file yields its records (one list) instead."""
    with open(path, "rb", buffering=1 << 16) as f:
        digest.begin(path, f)
        if f.peek(4096)[:4096].lstrip()[:1] == b"[":
            yield list(_json_array(f, path, max_bytes, digest))
            digest.end()
            return
        numbers: list[int] = []
        lines: list[bytes] = []
        for first, block in line_blocks(f, path, max_bytes, digest):
            if any(not line or line.isspace() for line in block):
                kept = [(first + i, line) for i, line in enumerate(block) if line and not line.isspace()]
                numbers += [n for n, _ in kept]
                lines += [line for _, line in kept]
            else:
                numbers += range(first, first + len(block))
                lines += block
            while len(lines) >= batch_rows:
                yield numbers[:batch_rows], lines[:batch_rows]
                numbers, lines = numbers[batch_rows:], lines[batch_rows:]
        if lines:
            yield numbers, lines
        digest.end()


def parse_json_lines(path: Path, numbers: list[int], lines: list[bytes]) -> list[Record]:
    """The per-line parse of a batch (exact errors naming the line)."""
    out = []
    for lineno, raw in zip(numbers, lines):
        try:
            obj = loads(raw)
        except ValueError as exc:
            raise _json_error(path, lineno, exc) from None
        if not isinstance(obj, dict):
            raise ValueError(f"{where(path, lineno)}: expected a JSON object, got {type(obj).__name__}; {FIX}")
        out.append((str(lineno), obj))
    return out


def arrow_json_lines(lines: list[bytes]) -> pa.Table | None:
    """The batch parsed by Arrow's JSON reader, or None where it cannot (then use parse_json_lines)."""
    import pyarrow.json as pj

    data = b"\n".join(lines) + b"\n"
    try:
        return pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(block_size=len(data) + 1))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def read_parquet_batches(path: Path, batch_rows: int, digest: ContentHash) -> Iterator[tuple[int, pa.Table]]:
    """(first row number, record batch as a table) of a Parquet file; NaN / infinite floats are refused."""
    with open(path, "rb", buffering=1 << 20) as f:  # the version hash covers the file's bytes
        digest.begin(path, f)
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        digest.end()
    try:
        source = pq.ParquetFile(path)
        offset = 0
        for batch in source.iter_batches(batch_size=batch_rows):
            _refuse_non_finite(path, batch, offset)
            yield offset, pa.Table.from_batches([batch])
            offset += batch.num_rows
    except pa.ArrowException as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc}); nothing was written") from None


def read_csv_records(path: Path, max_bytes: int, digest: ContentHash) -> Iterator[Record]:
    """Records of a CSV file with a header row; every value is a string."""
    csv.field_size_limit(max_bytes)
    with open(path, "rb", buffering=1 << 20) as f:
        digest.begin(path, f)

        def text_lines():
            for lineno, raw in bounded_lines(f, path, max_bytes, digest):
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    yield raw.decode("utf-8") + "\n"
                except UnicodeDecodeError as exc:
                    raise ValueError(f"{where(path, lineno)}: not UTF-8 at byte {exc.start}; re-save the file as UTF-8; "
                                     "nothing was written") from None

        reader = csv.DictReader(text_lines())
        try:
            if not reader.fieldnames:
                raise ValueError(f"{path}: empty CSV (no header row); nothing was written")
            for row in reader:
                if None in row or any(v is None for v in row.values()):
                    raise ValueError(
                        f"{where(path, reader.line_num)}: the number of fields differs from the header's "
                        f"{len(reader.fieldnames)} ({', '.join(reader.fieldnames)}); {FIX}")
                yield str(reader.line_num), dict(row)
        except csv.Error as exc:
            raise ValueError(f"{where(path, reader.line_num)}: {exc}; {FIX}") from None
        digest.end()


def _refuse_non_finite(path: Path, batch: pa.RecordBatch, offset: int) -> None:
    for name, column in zip(batch.schema.names, batch.columns):
        if not pa.types.is_floating(column.type):
            continue
        bad = pc.or_(pc.is_nan(column), pc.is_inf(column))
        if pc.any(bad).as_py():
            row = offset + pc.index(bad, True).as_py()
            raise ValueError(f"{where(path, f'row {row}')}: field {name!r} is {column[row - offset].as_py()} "
                             f"(NaN and infinities are refused); {FIX}")
