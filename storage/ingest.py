"""Dataset ingestion: a source file (or a DSS dataset directory) -> one Parquet part per split, streamed.

    from storage import Catalog, Store
    from storage.ingest import IngestOptions, ingest
    with Catalog.open(Store.open("./salient-data")) as cat:
        ingest(cat, "cqa", "../shared/datasets/cqa", IngestOptions(format="cqa"))

Formats: `jsonl` (JSON Lines; a file whose first byte is `[` is read as one JSON array), `csv`
(header row), `parquet`, and the DSS adapters in storage.adapters (`cqa`, `svamp`, `esnli`,
`anli`). `auto` picks a DSS adapter for `<prefix>_<split>.json` files and directories holding
them, else goes by the file extension.

Rows (DATASET_SCHEMA): example_id, input, target, choices, split, dataset, then the source's other fields
(renamed `source_<field>` where they clash with these),
`source_index` (0-based position in the source file) and, for DSS splits with PaLM outputs,
`llm_rationale` / `llm_label`. example_id is the dataset's id when it has one, else
sha256(input)[:16]; an input that occurs more than once in a split gets
sha256(split, source_index, input)[:16] for every occurrence instead (e-SNLI valid has such pairs),
so ids are unique within (dataset, split) and stable for the same file.

Types (storage.adapters.text_value): input must be a JSON string; id, target and template fields
take a string or an integer; anything else (floats, lists, objects, booleans) is an error naming
the line and the field unless `coerce=True` (`--coerce`) stores it as text. NaN and infinities are
refused everywhere (storage.readers).

Memory does not grow with the file. The source streams (storage.readers: bounded block reads,
Parquet record batches) in batches of `ingest_batch_rows`; JSON Lines and Parquet batches are
mapped by Arrow (GenericMapper.columns) with a per-record fallback that names the bad line, CSV and
the DSS files per record. Every batch is validated, hashed for the version and written at once in
the part's final layout (storage.spool.SplitSpool); at the end the file gets its footer and is
renamed into place, or is rewritten once when ids repeat or column types changed between batches.

Versions: version = the first `dataset_version_chars` hex characters of sha256(ingest options +
split + the bytes of every file read). Parts land at `<store>/datasets/<name>/<version>/part-00000.parquet`
with footer keys that Catalog.rebuild reads. Adding the same content again is a no-op. Ingest is
atomic: every split is read and validated (pass 1) before any part is written, parts are
registered only after all are written, and a failure removes what this ingest wrote; a bad record
raises ValueError("<file>:<line>: <reason>; ...") and the store is left unchanged.
"""
from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa

from .adapters import DSS_FORMATS, GenericMapper, RecordError, detect_dss
from .catalog import Catalog
from .objects import ObjectPath
from .parquet_io import read_metadata
from .readers import (FIX, ContentHash, arrow_json_lines, json_line_batches, loads, parse_json_lines, read_csv_records,
                      read_json_records, read_parquet_batches, where)
from .spool import Batch, SplitSpool
from .settings import get_setting
from .store import check_name
from .templates import check_template

GENERIC_FORMATS = ("jsonl", "csv", "parquet")
FORMATS = ("auto",) + GENERIC_FORMATS + tuple(DSS_FORMATS)
_EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class IngestOptions:
    """How to read a source. Field options apply to the generic formats only."""

    format: str = "auto"
    """auto | jsonl | csv | parquet | cqa | svamp | esnli | anli."""
    split: str | None = None
    """Generic formats: the split name of every row (default `train`). DSS formats: ingest only this split."""
    id_field: str | None = None
    """Field holding a unique example id (default: `id`, `example_id` or `uid` when present, else a hash)."""
    input_field: str | None = None
    """Field holding the model input (default `input`); exclusive with input_template."""
    input_template: str | None = None
    """Plain `{field}` template over the record's fields, e.g. "{question}\\nContext: {context}" (storage.templates)."""
    target_field: str | None = None
    """Field holding the gold answer (default: `target`, `label` or `answer` when present, else none)."""
    choices_field: str | None = None
    """Field holding the answer choices: a list of strings or a JSON array string (default `choices` when present)."""
    llm: bool = True
    """DSS formats: add the PaLM rationales from llm/ as llm_rationale / llm_label."""
    coerce: bool = False
    """Store non-string values of text fields (input, id, target, template fields) as text instead of refusing them."""

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"unknown --format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.input_field and self.input_template:
            raise ValueError("give either --input-field or --input-template, not both")
        if self.split is not None:
            check_name("split", self.split)
        if self.input_template is not None:
            check_template(self.input_template)

    def described(self) -> dict:
        """The options as hashed into the version (coerce only when set, so older versions stay valid)."""
        out = {k: v for k, v in asdict(self).items() if k != "split"}
        if not self.coerce:
            out.pop("coerce")
        return out


@dataclass
class SplitSource:
    """One split to read: `batches(digest)` yields Batch-es and hashes what it reads."""

    split: str
    format: str
    path: Path
    batches: Callable[[ContentHash], Iterator[Batch]]
    llm: Callable[[], tuple[list[tuple[str, str | None]] | None, list[bytes]]] = lambda: (None, [])
    """DSS: the parsed PaLM outputs (rationale, label) and the raw files' bytes for the version hash."""


@dataclass
class Spooled:
    """Pass 1 of one split: its validated rows in a SplitSpool, and the content hash."""

    source: SplitSource
    spool: SplitSpool
    content_hash: str
    llm_rows: int = 0

    @property
    def rows(self) -> int:
        return self.spool.rows


@dataclass
class PartResult:
    name: str
    split: str
    version: str
    rows: int
    status: str  # added | unchanged | reactivated
    path: str
    format: str
    source: str
    notes: list[str] = field(default_factory=list)


@dataclass
class PreparedSplit:
    """One split read whole into memory (prepare(): for small sources such as the DSS files)."""

    split: str
    table: pa.Table
    content_hash: str
    format: str
    source: str
    llm_rows: int = 0


# ------------------------------------------------------------------ sources
def _dss_sources(fmt_name: str, path: Path, opts: IngestOptions) -> list[SplitSource]:
    fmt = DSS_FORMATS[fmt_name]
    if path.is_dir():
        directory, files = path, fmt.split_files(path)
        if not files:
            raise ValueError(f"{path}: no {fmt.prefix}_<split>.json files for --format {fmt_name}")
    else:
        split = fmt.split_of(path)
        if split is None:
            raise ValueError(f"{path}: --format {fmt_name} expects files named {fmt.prefix}_<split>.json or their directory")
        directory, files = path.parent, {split: path}
    if opts.split:
        if opts.split not in files:
            raise ValueError(f"{path}: no split {opts.split!r} for {fmt_name}; present: {', '.join(sorted(files))}"
                             + (f" ({fmt.missing_note})" if fmt.missing_note else ""))
        files = {opts.split: files[opts.split]}
    max_bytes = get_setting("ingest_max_line_bytes")
    sources = []
    for split, file in files.items():
        check_name("split", split)

        def rows(digest, file=file):
            for loc, rec in read_json_records(file, max_bytes, digest):
                try:
                    yield loc, fmt.build(rec)
                except RecordError as exc:
                    raise ValueError(f"{where(file, loc)}: {exc}; {FIX}") from None

        def batches(digest, rows=rows):
            for chunk in _chunks(rows(digest), get_setting("ingest_batch_rows")):
                yield Batch.of_rows(chunk)

        def llm(split=split):
            llm_files = fmt.llm_files(directory, split) if opts.llm else []
            if not llm_files:
                return None, []
            outputs: list[str] = []
            blobs: list[bytes] = []
            for lf in llm_files:
                with open(lf, "rb") as f:
                    blob = f.read(max_bytes + 1)
                if len(blob) > max_bytes:
                    raise ValueError(f"{lf}: over ingest_max_line_bytes={max_bytes} bytes; pass --no-llm or raise "
                                     "SALIENT_INGEST_MAX_LINE_BYTES")
                blobs.append(blob)
                try:
                    items = loads(blob)
                except ValueError as exc:
                    raise ValueError(f"{where(lf, getattr(exc, 'lineno', 1))}: invalid JSON ({exc}); fix the file "
                                     "or pass --no-llm") from None
                if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
                    raise ValueError(f"{lf}: expected a JSON list of strings; fix the file or pass --no-llm")
                outputs.extend(items)
            return [fmt.parse_llm(o) for o in outputs], blobs

        sources.append(SplitSource(split, fmt_name, file, batches, llm))
    return sources


def sources(path: str | Path, opts: IngestOptions) -> list[SplitSource]:
    """The splits `path` holds under `opts`; checks the format and options, reads nothing yet."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give the path of a JSONL/CSV/Parquet file or a DSS dataset directory")
    fmt = opts.format
    if fmt == "auto":
        fmt = detect_dss(path) or (None if path.is_dir() else _EXTENSIONS.get(path.suffix.lower()))
        if fmt is None:
            raise ValueError(f"{path}: cannot tell the format; pass --format ({', '.join(FORMATS[1:])})")
    if fmt in DSS_FORMATS:
        given = [f"--{k.replace('_', '-')}" for k in ("id_field", "input_field", "input_template", "target_field", "choices_field")
                 if getattr(opts, k)]
        if given:
            raise ValueError(f"{', '.join(given)} apply to --format jsonl/csv/parquet only; --format {fmt} builds its fields itself")
        return _dss_sources(fmt, path, opts)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; --format {fmt} reads one file (directories are for {', '.join(DSS_FORMATS)})")
    return [SplitSource(opts.split or "train", fmt, path, lambda digest: _generic_batches(path, fmt, opts, digest))]


def _chunks(items, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _generic_batches(path: Path, fmt: str, opts: IngestOptions, digest: ContentHash) -> Iterator[Batch]:
    """JSONL and Parquet batches go through GenericMapper.columns (Arrow), falling back to the per-record
    path for a batch it cannot take (which then names the bad line); CSV records go per record."""
    max_bytes, batch_rows = get_setting("ingest_max_line_bytes"), get_setting("ingest_batch_rows")
    mapper: GenericMapper | None = None

    def per_record(records: list[tuple[str, dict]]) -> Batch:
        nonlocal mapper
        rows = []
        for loc, rec in records:
            if mapper is None:
                mapper = GenericMapper(path, opts, loc, rec)
            rows.append((loc, mapper.row(loc, rec)))
        return Batch.of_rows(rows)

    if fmt == "jsonl":
        for item in json_line_batches(path, max_bytes, batch_rows, digest):
            if isinstance(item, list):  # a JSON array's records
                for chunk in _chunks(item, batch_rows):
                    yield per_record(chunk)
                continue
            numbers, lines = item
            if mapper is None:
                mapper = GenericMapper(path, opts, *parse_json_lines(path, numbers[:1], lines[:1])[0])
            table = arrow_json_lines(lines)
            columns = mapper.columns(table) if table is not None else None
            if columns is None:
                yield per_record(parse_json_lines(path, numbers, lines))
            else:
                yield Batch(columns, numbers)
    elif fmt == "csv":
        for chunk in _chunks(read_csv_records(path, max_bytes, digest), batch_rows):
            yield per_record(chunk)
    else:
        for offset, table in read_parquet_batches(path, batch_rows, digest):
            if mapper is None and table.num_rows:
                mapper = GenericMapper(path, opts, f"row {offset}", table.slice(0, 1).to_pylist()[0])
            columns = mapper.columns(table) if mapper is not None else None
            if columns is None:
                yield per_record([(f"row {offset + i}", rec) for i, rec in enumerate(table.to_pylist())])
            else:
                yield Batch(columns, list(range(offset, offset + table.num_rows)))
    if mapper is None:
        raise ValueError(f"{path}: no records; nothing was written")



# ------------------------------------------------------------------ pass 1: read, validate, spool
def _spool(source: SplitSource, opts: IngestOptions, work: Path, dataset: str) -> Spooled:
    digest = ContentHash(opts.described() | {"format": source.format, "split": source.split})
    llm, llm_blobs = source.llm()  # read first so that batches carry them; hashed after the rows
    spool = SplitSpool(work, source.split, dataset, source.path, "row " if source.format == "parquet" else "",
                       get_setting("parquet_row_group_size"), llm)
    try:
        for batch in source.batches(digest):
            spool.add(batch)
        for blob in llm_blobs:  # the PaLM files are hashed after the split's file, as they always were
            digest.add(blob)
        if llm is not None and len(llm) != spool.rows:
            raise ValueError(
                f"{source.path.parent / 'llm'}: {len(llm)} PaLM outputs for split {source.split!r} but {source.path} "
                f"has {spool.rows} examples; they must align one to one (pass --no-llm to ingest without them)")
    except BaseException:
        spool.close()
        raise
    return Spooled(source, spool, digest.hexdigest(), llm_rows=len(llm or ()))


# ------------------------------------------------------------------ writing
def part_metadata(*, name: str, version: str, split: str, rows: int, format: str, source: str,
                  content_hash: str, created_at: dt.datetime) -> dict[str, str]:
    """Footer keys of a dataset part; Catalog.rebuild re-registers the part from exactly these."""
    return {
        "salient.dataset": name, "salient.version": version, "salient.split": split, "salient.rows": str(rows),
        "salient.format": format, "salient.source": source, "salient.content_hash": content_hash,
        "salient.created_at": created_at.isoformat(),
    }


def _spool_all(path: str | Path, opts: IngestOptions, work: Path, dataset: str) -> list[Spooled]:
    out = []
    try:
        for i, source in enumerate(sources(path, opts)):
            directory = work / f"split-{i}"
            directory.mkdir(parents=True)
            out.append(_spool(source, opts, directory, dataset))
    except BaseException:
        for sp in out:
            sp.spool.close()
        raise
    return out


def ingest(catalog: Catalog, name: str, path: str | Path, opts: IngestOptions | None = None) -> list[PartResult]:
    """Add dataset `name` from `path` to the store; returns one PartResult per split.

    Re-adding content that is already the active version is a no-op (status "unchanged"); content
    that was superseded becomes active again (status "reactivated").
    """
    opts = opts or IngestOptions()
    check_name("dataset", name)
    store = catalog.store
    chars = get_setting("dataset_version_chars")
    created_at = dt.datetime.now(dt.timezone.utc)
    results: list[PartResult] = []
    written: list[Path] = []
    work = Path(tempfile.mkdtemp(prefix=".ingest-", dir=store.local_dir))
    try:
        spooled = _spool_all(path, opts, work, name)  # every split read and validated before any write
        for sp in spooled:
            src = sp.source
            version = sp.content_hash[:chars]
            part = store.dataset_part(name, version, 0)
            notes = [f"{sp.llm_rows} PaLM rationales in llm_rationale"] if sp.llm_rows else []
            source_path = str(src.path.resolve())
            same_split = [e for e in catalog.find_dataset_version(name, sp.content_hash) if e["split"] == src.split]
            if same_split and same_split[0]["active"]:
                results.append(PartResult(name, src.split, version, sp.rows, "unchanged", same_split[0]["path"],
                                          src.format, source_path, notes))
                continue
            meta = part_metadata(name=name, version=version, split=src.split, rows=sp.rows, format=src.format,
                                 source=source_path, content_hash=sp.content_hash, created_at=created_at)
            created_dir = not part.parent.exists()
            try:
                sp.spool.finish(part, meta)
            finally:
                written.append(part if not created_dir else part.parent)
            status = "reactivated" if same_split else "added"
            results.append(PartResult(name, src.split, version, sp.rows, status, store.relative(part),
                                      src.format, source_path, notes))
        for r, sp in zip(results, spooled):
            if r.status != "unchanged":
                catalog.register_dataset_part(name=name, version=r.version, split=r.split, path=r.path, rows=r.rows,
                                              format=r.format, source=r.source, content_hash=sp.content_hash,
                                              created_at=created_at)
    except BaseException:
        _remove_unregistered(catalog, written)
        raise
    finally:
        for sp in locals().get("spooled") or []:
            sp.spool.close()
        shutil.rmtree(work, ignore_errors=True)
    return results


def prepare(path: str | Path, opts: IngestOptions) -> list[PreparedSplit]:
    """Read and validate every split of `path` into memory (small sources only; `ingest` streams)."""
    with tempfile.TemporaryDirectory(prefix="salient-prepare-") as tmp:
        out = []
        for sp in _spool_all(path, opts, Path(tmp), ""):
            table = sp.spool.table().drop_columns(["dataset"])
            out.append(PreparedSplit(sp.source.split, table, sp.content_hash, sp.source.format,
                                     str(sp.source.path.resolve()), llm_rows=sp.llm_rows))
        return out


def _remove_unregistered(catalog: Catalog, written: list[Path]) -> None:
    """After a failed write, delete the files/directories this ingest created that the catalog does not list."""
    registered = {r["path"] for r in catalog.query("SELECT path FROM datasets")}
    for item in written:
        part = item if item.suffix == ".parquet" else item / "part-00000.parquet"
        if catalog.store.relative(part) in registered:
            continue
        if isinstance(item, ObjectPath):  # no directories on object storage: the part is the only object
            part.unlink(missing_ok=True)
        elif item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def part_info(path: str | Path) -> dict[str, str]:
    """The footer metadata of a dataset part (what Catalog.rebuild reads)."""
    return read_metadata(path)
