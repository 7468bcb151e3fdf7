"""Dataset ingestion: a source file (or a DSS dataset directory) -> one Parquet part per split.

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

Versions: version = the first `dataset_version_chars` hex characters of sha256(ingest options +
split + the bytes of every file read). Parts land at `<store>/datasets/<name>/<version>/part-00000.parquet`
with footer keys that Catalog.rebuild reads. Adding the same content again is a no-op. Ingest is
atomic: every file is parsed and validated before anything is written; a bad record raises
ValueError("<file>:<line>: <reason>; ...") and the store is left unchanged.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from .adapters import DSS_FORMATS, FIX, READERS, RecordError, detect_dss, generic_rows, read_jsonl, where
from .catalog import Catalog
from .parquet_io import read_metadata, write_parquet_atomic
from .schemas import DATASET_SCHEMA
from .settings import get_setting
from .store import check_name

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
    """Python format string over the record's fields, e.g. "{question}\\nContext: {context}"."""
    target_field: str | None = None
    """Field holding the gold answer (default: `target`, `label` or `answer` when present, else none)."""
    choices_field: str | None = None
    """Field holding the answer choices: a list of strings or a JSON array string (default `choices` when present)."""
    llm: bool = True
    """DSS formats: add the PaLM rationales from llm/ as llm_rationale / llm_label."""

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"unknown --format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.input_field and self.input_template:
            raise ValueError("give either --input-field or --input-template, not both")
        if self.split is not None:
            check_name("split", self.split)


@dataclass
class PreparedSplit:
    """One split parsed and validated in memory, not yet written."""

    split: str
    table: pa.Table
    content_hash: str
    format: str
    source: str
    llm_rows: int = 0


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


# ------------------------------------------------------------------ rows -> table
def _hash_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _assign_ids(rows: list[dict], split: str) -> None:
    """Hash ids where the source has none; reject duplicate source ids (see the module docstring)."""
    seen: dict[str, str] = {}
    counts = Counter(r["input"] for r in rows if r["example_id"] is None)
    for i, r in enumerate(rows):
        if r["example_id"] is None:
            r["example_id"] = _hash_id(split, str(i), r["input"]) if counts[r["input"]] > 1 else _hash_id(r["input"])
        elif r["example_id"] in seen:
            raise ValueError(
                f"{r['where']}: example id {r['example_id']!r} already used at {seen[r['example_id']]}; ids must be unique "
                "within a split: pass --id-field naming a unique field, or omit the id field to hash the inputs")
        seen[r["example_id"]] = r["where"]


def _extra_column(values: list) -> pa.Array:
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        arr = pa.array([None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str)) for v in values])
    return arr.cast(pa.string()) if pa.types.is_null(arr.type) else arr


def _to_table(rows: list[dict], split: str, llm: list[tuple[str, str | None]] | None) -> pa.Table:
    arrays = [
        pa.array([r["example_id"] for r in rows], pa.string()),
        pa.array([r["input"] for r in rows], pa.string()),
        pa.array([r["target"] for r in rows], pa.string()),
        pa.array([r["choices"] for r in rows], pa.list_(pa.string())),
        pa.array([split] * len(rows), pa.string()),
    ]
    fields = list(DATASET_SCHEMA)
    extra_names: list[str] = []
    for r in rows:
        for k in r["extra"]:
            if k not in extra_names:
                extra_names.append(k)
    for name in extra_names:
        arr = _extra_column([r["extra"].get(name) for r in rows])
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    arrays.append(pa.array(range(len(rows)), pa.int64()))
    fields.append(pa.field("source_index", pa.int64()))
    if llm is not None:
        for i, name in enumerate(("llm_rationale", "llm_label")):
            arrays.append(pa.array([pair[i] for pair in llm], pa.string()))
            fields.append(pa.field(name, pa.string()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


class _Hasher:
    def __init__(self, opts: IngestOptions, fmt: str, split: str):
        self._h = hashlib.sha256(b"salient-ingest-v1\n")
        described = {k: v for k, v in asdict(opts).items() if k != "split"} | {"format": fmt, "split": split}
        self._h.update(json.dumps(described, sort_keys=True).encode() + b"\n")

    def add(self, data: bytes) -> None:
        self._h.update(len(data).to_bytes(8, "little"))
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


# ------------------------------------------------------------------ planning (parse + validate, no writes)
def _prepare_dss(fmt_name: str, path: Path, opts: IngestOptions) -> list[PreparedSplit]:
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
    prepared = []
    for split, file in files.items():
        check_name("split", split)
        hasher = _Hasher(opts, fmt_name, split)
        data = file.read_bytes()
        hasher.add(data)
        rows = []
        for lineno, rec in read_jsonl(file, data):
            try:
                row = fmt.build(rec)
            except RecordError as exc:
                raise ValueError(f"{where(file, lineno)}: {exc}; {FIX}") from None
            row["where"] = where(file, lineno)
            rows.append(row)
        _assign_ids(rows, split)
        llm = None
        llm_files = fmt.llm_files(directory, split) if opts.llm else []
        if llm_files:
            outputs: list[str] = []
            for lf in llm_files:
                blob = lf.read_bytes()
                hasher.add(blob)
                try:
                    items = json.loads(blob)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{where(lf, exc.lineno)}: invalid JSON ({exc.msg}); fix the file or pass --no-llm") from None
                if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
                    raise ValueError(f"{lf}: expected a JSON list of strings; fix the file or pass --no-llm")
                outputs.extend(items)
            if len(outputs) != len(rows):
                raise ValueError(
                    f"{directory / 'llm'}: {len(outputs)} PaLM outputs for split {split!r} but {file} has {len(rows)} "
                    "examples; they must align one to one (pass --no-llm to ingest without them)")
            llm = [fmt.parse_llm(o) for o in outputs]
        prepared.append(PreparedSplit(split, _to_table(rows, split, llm), hasher.hexdigest(), fmt_name,
                                      str(file.resolve()), llm_rows=len(llm or ())))
    return prepared


def prepare(path: str | Path, opts: IngestOptions) -> list[PreparedSplit]:
    """Parse and validate every split of `path` in memory; raises ValueError naming file:line on bad input."""
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
        return _prepare_dss(fmt, path, opts)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; --format {fmt} reads one file (directories are for {', '.join(DSS_FORMATS)})")
    split = opts.split or "train"
    data = path.read_bytes()
    hasher = _Hasher(opts, fmt, split)
    hasher.add(data)
    rows = generic_rows(path, READERS[fmt](path, data), opts)
    _assign_ids(rows, split)
    return [PreparedSplit(split, _to_table(rows, split, None), hasher.hexdigest(), fmt, str(path.resolve()))]


# ------------------------------------------------------------------ writing
def part_metadata(*, name: str, version: str, split: str, rows: int, format: str, source: str,
                  content_hash: str, created_at: dt.datetime) -> dict[str, str]:
    """Footer keys of a dataset part; Catalog.rebuild re-registers the part from exactly these."""
    return {
        "salient.dataset": name, "salient.version": version, "salient.split": split, "salient.rows": str(rows),
        "salient.format": format, "salient.source": source, "salient.content_hash": content_hash,
        "salient.created_at": created_at.isoformat(),
    }


def ingest(catalog: Catalog, name: str, path: str | Path, opts: IngestOptions | None = None) -> list[PartResult]:
    """Add dataset `name` from `path` to the store; returns one PartResult per split.

    Re-adding content that is already the active version is a no-op (status "unchanged"); content
    that was superseded becomes active again (status "reactivated").
    """
    opts = opts or IngestOptions()
    check_name("dataset", name)
    prepared = prepare(path, opts)  # every file parsed and validated before any write
    store = catalog.store
    chars = get_setting("dataset_version_chars")
    row_group = get_setting("parquet_row_group_size")
    created_at = dt.datetime.now(dt.timezone.utc)
    results: list[PartResult] = []
    written: list[Path] = []
    try:
        for p in prepared:
            version = p.content_hash[:chars]
            part = store.dataset_part(name, version, 0)
            notes = [f"{p.llm_rows} PaLM rationales in llm_rationale"] if p.llm_rows else []
            existing = catalog.find_dataset_version(name, p.content_hash)
            same_split = [e for e in existing if e["split"] == p.split]
            if same_split and same_split[0]["active"]:
                results.append(PartResult(name, p.split, version, p.table.num_rows, "unchanged", same_split[0]["path"],
                                          p.format, p.source, notes))
                continue
            table = p.table.add_column(5, pa.field("dataset", pa.string()), pa.array([name] * p.table.num_rows, pa.string()))
            meta = part_metadata(name=name, version=version, split=p.split, rows=p.table.num_rows, format=p.format,
                                 source=p.source, content_hash=p.content_hash, created_at=created_at)
            created_dir = not part.parent.exists()
            write_parquet_atomic(table, part, row_group_size=row_group, metadata=meta)
            written.append(part if not created_dir else part.parent)
            status = "reactivated" if same_split else "added"
            results.append(PartResult(name, p.split, version, p.table.num_rows, status, store.relative(part),
                                      p.format, p.source, notes))
        for r, p in zip(results, prepared):
            if r.status != "unchanged":
                catalog.register_dataset_part(name=name, version=r.version, split=r.split, path=r.path, rows=r.rows,
                                              format=r.format, source=r.source, content_hash=p.content_hash,
                                              created_at=created_at)
    except BaseException:
        _remove_unregistered(catalog, written)
        raise
    return results


def _remove_unregistered(catalog: Catalog, written: list[Path]) -> None:
    """After a failed write, delete the files/directories this ingest created that the catalog does not list."""
    registered = {r["path"] for r in catalog.query("SELECT path FROM datasets")}
    for item in written:
        part = item if item.suffix == ".parquet" else item / "part-00000.parquet"
        if catalog.store.relative(part) in registered:
            continue
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def part_info(path: str | Path) -> dict[str, str]:
    """The footer metadata of a dataset part (what Catalog.rebuild reads)."""
    return read_metadata(path)
