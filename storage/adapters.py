"""Source adapters: how a source file's records become dataset rows (storage.ingest writes them).

Generic sources (`read_jsonl`, `READERS`, `generic_rows`): JSON Lines, CSV and Parquet records,
mapped to rows by field options (id / input or template / target / choices); every reader returns
[(line or item, record dict)] so errors can name `<file>:<line>`.

The four Distilling step-by-step datasets in ../shared/datasets (DSS: Hsieh et al. 2023): each adapter turns one source record (a JSON object from `<name>_<split>.json`, JSON Lines) into a
dataset row exactly as the dataset's SOURCE.md / DSS `data_utils.py` builds it, and parses the
PaLM chain-of-thought outputs in `llm/<split>_CoT_<k>.json` (item i of file k belongs to example
k*batch+i, same order as the JSONL) into `llm_rationale` / `llm_label`.

| format | input | target | choices | example_id |
|---|---|---|---|---|
| cqa   | `{question}\\nAnswer Choices:\\n(a) c0\\n...(e) c4` | answer text | the 5 choice texts | `id` |
| svamp | the `input` field (Body\\nQuestion) | the equation (`label`) | null | hash of input |
| esnli | `premise: {premise}\\nhypothesis: {hypothesis}` | label name | the 3 label names | hash of input |
| anli  | same as esnli | label name | the 3 label names | `uid` |

DSS joins premise and hypothesis with T5's `</s>`; we keep a model-neutral text instead (the
teacher's tokenizer adds its own special tokens). Label ints: 0 entailment, 1 neutral, 2 contradiction.
Builders raise `RecordError(reason)`; storage.ingest adds the file and line number.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from .schemas import DATASET_COLUMNS
from .settings import get_setting

NLI_LABELS = ("entailment", "neutral", "contradiction")
RESERVED = ("dataset", "source_index", "llm_rationale", "llm_label")  # columns ingest adds beside DATASET_SCHEMA
FIX = "fix the record (or remove it) and run `salient datasets add` again; nothing was written"


class RecordError(ValueError):
    """One source record cannot be turned into a row; the reason names the field."""


def _text(record: dict, field: str) -> str:
    value = record.get(field)
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"field {field!r} must be a non-empty string, got {value!r}")
    return value


def nli_input(premise: str, hypothesis: str) -> str:
    return f"premise: {premise}\nhypothesis: {hypothesis}"


def cqa_input(question: str, choices: list[str]) -> str:
    letters = "abcde"
    lines = "\n".join(f"({letters[i]}) {c}" for i, c in enumerate(choices))
    return f"{question}\nAnswer Choices:\n{lines}"


# ------------------------------------------------------------------ row builders
def build_cqa(record: dict) -> dict:
    question = _text(record, "question")
    choices = record.get("choices")
    if not isinstance(choices, list) or len(choices) != 5 or not all(isinstance(c, str) for c in choices):
        raise RecordError(f"field 'choices' must be a list of 5 strings, got {choices!r}")
    answer = _text(record, "answer")
    if answer not in choices:
        raise RecordError(f"answer {answer!r} is not one of the choices {choices!r}")
    return {
        "example_id": _text(record, "id"), "input": cqa_input(question, choices), "target": answer,
        "choices": list(choices),
        "extra": {k: record.get(k) for k in ("question", "abstractive_explanation", "extractive_explanation")},
    }


def build_svamp(record: dict) -> dict:
    return {"example_id": None, "input": _text(record, "input"), "target": _text(record, "label"), "choices": None, "extra": {}}


def _nli_label(record: dict) -> str:
    label = record.get("label")
    if isinstance(label, bool) or label not in (0, 1, 2):
        raise RecordError(f"field 'label' must be 0, 1 or 2 ({', '.join(NLI_LABELS)}), got {label!r}")
    return NLI_LABELS[label]


def build_esnli(record: dict) -> dict:
    premise, hypothesis = _text(record, "premise"), _text(record, "hypothesis")
    return {
        "example_id": None, "input": nli_input(premise, hypothesis), "target": _nli_label(record),
        "choices": list(NLI_LABELS),
        "extra": {"premise": premise, "hypothesis": hypothesis, "label": record["label"],
                  **{k: record.get(k) for k in ("explanation_1", "explanation_2", "explanation_3")}},
    }


def build_anli(record: dict) -> dict:
    premise, hypothesis = _text(record, "premise"), _text(record, "hypothesis")
    return {
        "example_id": _text(record, "uid"), "input": nli_input(premise, hypothesis), "target": _nli_label(record),
        "choices": list(NLI_LABELS),
        "extra": {"premise": premise, "hypothesis": hypothesis, "label": record["label"], "reason": record.get("reason")},
    }


# ------------------------------------------------------------------ PaLM output parsers (DSS _parse_llm_output)
# Each returns (rationale, label); label is None where DSS would fall back to ' '.
def parse_cqa_llm(output: str) -> tuple[str, str | None]:
    text = output.split("Q:")[0].rstrip()
    rationale, sep, rest = text.partition("So the answer is")
    label = None
    if sep:
        parts = re.split(r"\(.\)", rest)
        if len(parts) > 1 and parts[1].strip():
            label = parts[1].strip()
            label = label[:-1] if label.endswith(".") else label
    return rationale.rstrip(), label


def parse_svamp_llm(output: str) -> tuple[str, str | None]:
    text = output.split("Q:")[0].rstrip()
    rationale, sep, rest = text.partition("The answer is")
    if not sep:
        return "", None
    match = re.search(r"\(.*\)", rest)
    return rationale.rstrip(), match.group(0) if match else None


def parse_esnli_llm(output: str) -> tuple[str, str | None]:
    rationale = output.split("Answer:")[0].rstrip()
    parts = output.split("Answer: ")
    label = parts[1].split("Premise")[0].rstrip() if len(parts) > 1 else None
    return rationale, label or None


def parse_anli_llm(output: str) -> tuple[str, str | None]:
    parts = output.split("Premise:")[0].rstrip().split("So the answer is")
    if len(parts) != 2:
        return "", None
    label = parts[1].strip()
    label = label[:-1] if label.endswith(".") else label
    return parts[0].rstrip(), label or None


@dataclass(frozen=True)
class DSSFormat:
    """One DSS dataset: where its files are and how a record becomes a row."""

    name: str                                   # the --format value
    prefix: str                                 # files are <prefix>_<split>.json
    build: Callable[[dict], dict]               # record -> {"example_id", "input", "target", "choices", "extra"}
    parse_llm: Callable[[str], tuple[str, str | None]]
    missing_note: str = ""                      # what SOURCE.md says is absent

    def split_files(self, directory: Path) -> dict[str, Path]:
        """{split: path} of the JSON Lines files present in `directory`."""
        pattern = re.compile(rf"^{re.escape(self.prefix)}_([A-Za-z0-9]+)\.json$")
        found = {}
        for path in sorted(directory.iterdir()):
            m = pattern.match(path.name)
            if m and path.is_file():
                found[m.group(1)] = path
        return found

    def llm_files(self, directory: Path, split: str) -> list[Path]:
        """`llm/<split>_CoT_<k>.json` in k order (the DSS batch order)."""
        llm_dir = directory / "llm"
        if not llm_dir.is_dir():
            return []
        pattern = re.compile(rf"^{re.escape(split)}_CoT_(\d+)\.json$")
        numbered = [(int(m.group(1)), p) for p in llm_dir.iterdir() if (m := pattern.match(p.name))]
        return [p for _, p in sorted(numbered)]

    def split_of(self, path: Path) -> str | None:
        m = re.match(rf"^{re.escape(self.prefix)}_([A-Za-z0-9]+)\.json$", path.name)
        return m.group(1) if m else None


DSS_FORMATS: dict[str, DSSFormat] = {
    "cqa": DSSFormat("cqa", "cqa", build_cqa, parse_cqa_llm),
    "svamp": DSSFormat("svamp", "svamp", build_svamp, parse_svamp_llm),
    "esnli": DSSFormat("esnli", "esnli", build_esnli, parse_esnli_llm,
                       missing_note="esnli_train.json (549,367 examples) is not in ../shared/datasets"),
    "anli": DSSFormat("anli", "anli1", build_anli, parse_anli_llm,
                      missing_note="anli1_train.json (16,946 examples) is not in ../shared/datasets"),
}


def detect_dss(path: Path) -> str | None:
    """The DSS format of a directory (holding <prefix>_<split>.json) or of one such file; else None."""
    for fmt in DSS_FORMATS.values():
        if path.is_dir() and fmt.split_files(path):
            return fmt.name
        if path.is_file() and fmt.split_of(path):
            return fmt.name
    return None


def where(path: Path, line: int | str) -> str:
    return f"{path}:{line}"


# ------------------------------------------------------------------ generic sources: reading
def read_jsonl(path: Path, data: bytes) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; the first malformed line raises."""
    max_bytes = get_setting("ingest_max_line_bytes")
    if data.lstrip()[:1] == b"[":
        try:
            items = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where(path, exc.lineno)}: invalid JSON array ({exc.msg}, column {exc.colno}); {FIX}") from None
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"{path}: item {i} is {type(item).__name__}, expected a JSON object; {FIX}")
            out.append((i + 1, item))
        return out
    records = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        if len(raw) > max_bytes:
            raise ValueError(
                f"{where(path, lineno)}: line is {len(raw)} bytes, over ingest_max_line_bytes={max_bytes} "
                f"(raise SALIENT_INGEST_MAX_LINE_BYTES if it is meant to be that long); nothing was written")
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            reason = f"invalid JSON ({exc.msg}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else f"not UTF-8 ({exc.reason})"
            raise ValueError(f"{where(path, lineno)}: {reason}; {FIX}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{where(path, lineno)}: expected a JSON object, got {type(obj).__name__}; {FIX}")
        records.append((lineno, obj))
    return records


def _read_csv(path: Path, data: bytes) -> list[tuple[int, dict]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 at byte {exc.start}; re-save the file as UTF-8; nothing was written") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise ValueError(f"{path}: empty CSV (no header row); nothing was written")
    records = []
    try:
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise ValueError(
                    f"{where(path, reader.line_num)}: the number of fields differs from the header's "
                    f"{len(reader.fieldnames)} ({', '.join(reader.fieldnames)}); {FIX}")
            records.append((reader.line_num, dict(row)))
    except csv.Error as exc:
        raise ValueError(f"{where(path, reader.line_num)}: {exc}; {FIX}") from None
    return records


def _read_parquet(path: Path, data: bytes) -> list[tuple[int, dict]]:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except pa.ArrowException as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc}); nothing was written") from None
    return [(f"row {i}", rec) for i, rec in enumerate(table.to_pylist())]


READERS = {"jsonl": read_jsonl, "csv": _read_csv, "parquet": _read_parquet}


# ------------------------------------------------------------------ generic field mapping
def _first_present(keys, candidates) -> str | None:
    return next((c for c in candidates if c in keys), None)


def _choices(value, loc: str) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{loc}: choices {value!r} is not a JSON array of strings; {FIX}") from None
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ValueError(f"{loc}: choices must be a list of strings, got {value!r}; {FIX}")
    return value


def _as_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def generic_rows(path: Path, records: list[tuple[int, dict]], opts) -> list[dict]:
    """Map generic records to rows with the field options of `opts` (storage.ingest.IngestOptions)."""
    if not records:
        raise ValueError(f"{path}: no records; nothing was written")
    keys = set(records[0][1])
    id_field = opts.id_field or _first_present(keys, ("id", "example_id", "uid"))
    input_field = None if opts.input_template else (opts.input_field or "input")
    target_field = opts.target_field or _first_present(keys, ("target", "label", "answer"))
    choices_field = opts.choices_field or _first_present(keys, ("choices",))
    if input_field and input_field not in keys:
        raise ValueError(
            f"{where(path, records[0][0])}: no field {input_field!r} (fields: {', '.join(sorted(keys))}); "
            "name the input with --input-field FIELD or build it with --input-template '{a} {b}'")
    used = {f for f in (id_field, input_field, target_field, choices_field) if f}
    rows = []
    for lineno, rec in records:
        loc = where(path, lineno)
        for f in (opts.id_field, input_field, opts.target_field, opts.choices_field):
            if f and f not in rec:
                raise ValueError(f"{loc}: field {f!r} is missing; {FIX}")
        if opts.input_template:
            try:
                text = opts.input_template.format_map(rec)
            except KeyError as exc:
                raise ValueError(f"{loc}: --input-template names field {exc.args[0]!r}, which this record lacks; {FIX}") from None
            except (IndexError, ValueError) as exc:
                raise ValueError(f"--input-template {opts.input_template!r} is not a valid format string ({exc})") from None
        else:
            text = _as_text(rec.get(input_field))
        if not text:
            raise ValueError(f"{loc}: empty input; {FIX}")
        extra = {}
        for k, v in rec.items():
            if k in used:
                continue
            extra[f"source_{k}" if k in DATASET_COLUMNS or k in RESERVED else k] = v
        rows.append({
            "example_id": _as_text(rec.get(id_field)) if id_field else None,
            "input": text,
            "target": _as_text(rec.get(target_field)) if target_field else None,
            "choices": _choices(rec.get(choices_field), loc) if choices_field else None,
            "extra": extra, "where": loc,
        })
    return rows
