"""Source adapters: how a source file's records become dataset rows (storage.ingest writes them).

Generic sources (`GenericMapper`): JSON Lines, CSV and Parquet records (read by storage.readers),
mapped one at a time to rows by field options (id / input or template / target / choices), with
the field types checked (`text_value`); errors name `<file>:<line>` and the field.

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

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from .readers import FIX, where
from .schemas import DATASET_COLUMNS
from .templates import check_template

NLI_LABELS = ("entailment", "neutral", "contradiction")
RESERVED = ("dataset", "source_index", "llm_rationale", "llm_label")  # columns ingest adds beside DATASET_SCHEMA


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


def _as_text(value) -> str:
    """--coerce: any JSON value as text (whole floats without '.0', lists and objects as JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)


def _kind(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__)


def text_value(value, field: str, loc: str, *, coerce: bool, integers: bool) -> str | None:
    """A text field's value: a string (or, where `integers`, an int as its decimal text); None stays None.

    Anything else raises ValueError naming the line and the field, unless `coerce` (then `_as_text`).
    """
    if value is None or isinstance(value, str):
        return value
    if integers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if coerce:
        return _as_text(value)
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    expected = "a string or an integer" if integers else "a string"
    raise ValueError(f"{loc}: field {field!r} is {_kind(value)} ({shown}), expected {expected}; fix the record, or pass "
                     f"--coerce to store it as text; nothing was written")


class GenericMapper:
    """Maps generic records to rows; the default fields are picked from the first record's keys."""

    def __init__(self, path: Path, opts, first_loc: str, first: dict):
        self.path, self.opts = path, opts
        keys = set(first)
        self.id_field = opts.id_field or _first_present(keys, ("id", "example_id", "uid"))
        self.input_field = None if opts.input_template else (opts.input_field or "input")
        self.target_field = opts.target_field or _first_present(keys, ("target", "label", "answer"))
        self.choices_field = opts.choices_field or _first_present(keys, ("choices",))
        self.template = check_template(opts.input_template) if opts.input_template else None
        if self.input_field and self.input_field not in keys:
            raise ValueError(
                f"{where(path, first_loc)}: no field {self.input_field!r} (fields: {', '.join(sorted(keys))}); "
                "name the input with --input-field FIELD or build it with --input-template '{a} {b}'")
        self.used = {f for f in (self.id_field, self.input_field, self.target_field, self.choices_field) if f}
        self.required = [f for f in (opts.id_field, self.input_field, opts.target_field, opts.choices_field) if f]

    def row(self, loc_label: str, rec: dict) -> dict:
        loc = where(self.path, loc_label)
        coerce = self.opts.coerce
        for f in self.required:
            if f not in rec:
                raise ValueError(f"{loc}: field {f!r} is missing; {FIX}")
        if self.template is not None:
            values = {}
            for name in self.template.fields:
                if name not in rec:
                    raise ValueError(f"{loc}: --input-template names field {name!r}, which this record lacks; {FIX}")
                values[name] = text_value(rec[name], name, loc, coerce=coerce, integers=True) or ""
            text = self.template.render(values)
        else:
            text = text_value(rec.get(self.input_field), self.input_field, loc, coerce=coerce, integers=False)
        if not text:
            raise ValueError(f"{loc}: empty input; {FIX}")
        extra = {}
        for k, v in rec.items():
            if k not in self.used:
                extra[f"source_{k}" if k in DATASET_COLUMNS or k in RESERVED else k] = v
        return {
            "example_id": text_value(rec.get(self.id_field), self.id_field, loc, coerce=coerce, integers=True)
            if self.id_field else None,
            "input": text,
            "target": text_value(rec.get(self.target_field), self.target_field, loc, coerce=coerce, integers=True)
            if self.target_field else None,
            "choices": _choices(rec.get(self.choices_field), loc) if self.choices_field else None,
            "extra": extra,
        }

    # -------------------------------------------------------------- the vectorized path
    def columns(self, table: pa.Table) -> dict | None:
        """The row fields of a whole record batch as Arrow arrays, or None when some record needs the
        per-record path (`row`): for its exact error message, or for a value Arrow cannot take as is.

        Returns {"example_id": list[str | None] | None, "input", "target", "choices": Array | None,
        "extra": [(column name, Array)]}; the same values `row` would give.
        """
        names = set(table.column_names)
        n = table.num_rows
        for f in self.required:
            if f not in names or table.column(f).null_count:
                return None
        for col in table.columns:
            t = col.type
            if pa.types.is_temporal(t):  # Arrow's JSON reader reads ISO dates as timestamps; rows keep strings
                return None
            if pa.types.is_floating(t) and pc.any(pc.invert(pc.is_finite(col))).as_py():
                return None
        if self.template is not None:
            pieces = []
            for literal, name in self.template.parts:
                if literal:
                    pieces.append(pa.scalar(literal))
                if name is not None:
                    col = _text_column(table, name, integers=True)
                    if col is None or col.null_count:
                        return None
                    pieces.append(col)
            text = pc.binary_join_element_wise(*pieces, "") if len(pieces) > 1 else pieces[0]
        else:
            text = _text_column(table, self.input_field, integers=False)
        if text is None or text.null_count or pc.any(pc.equal(pc.binary_length(text), 0)).as_py():
            return None
        ids = target = choices = None
        if self.id_field:
            col = _text_column(table, self.id_field, integers=True)
            if col is None:
                return None
            ids = col
        if self.target_field:
            target = _text_column(table, self.target_field, integers=True)
            if target is None:
                return None
        if self.choices_field and self.choices_field in names:
            choices = table.column(self.choices_field)
            if pa.types.is_null(choices.type):
                choices = None
            elif not (pa.types.is_list(choices.type) and pa.types.is_string(choices.type.value_type)):
                return None
        extra = [(f"source_{k}" if k in DATASET_COLUMNS or k in RESERVED else k, table.column(k))
                 for k in table.column_names if k not in self.used]
        return {"example_id": ids, "input": text, "target": target, "choices": choices, "extra": extra, "rows": n}


def _text_column(table: pa.Table, name: str | None, *, integers: bool):
    """A column as strings when it holds strings (or integers where allowed) or only nulls; else None."""
    if name is None or name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    col = table.column(name)
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col.cast(pa.string())
    if pa.types.is_null(t) or (integers and pa.types.is_integer(t)):
        return col.cast(pa.string())
    return None
