"""Prompt templates: data, not code paths.

A template is a string with one `{input}` placeholder; the teacher reads
`template.format(input=row["input"])` (the row's `input_text`). Template text is never a unit
and never gets a score: only the characters that came from the row's input are attributed.

TEMPLATES maps a name to its text (a plain table: add a format by adding a row). FORMAT_TEMPLATES maps
the dataset `format` recorded at ingest (catalog `datasets.format`) to a template name.
`resolve_template(name_or_text)` accepts a name from TEMPLATES or a literal template containing
`{input}`.

SCAFFOLDING maps a template name to regex patterns of scaffolding that ingest puts *inside* the
row's input (CQA's `Answer Choices:` header and `(a)`..`(e)` markers). Every match of a pattern in the
row's input (searched on the input alone, so `^`/`\Z` are its line starts / its end) is treated like
template text: it is never part of a unit and gets no score. The text between matches (the question,
the choice texts) stays attributable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

TEMPLATES: dict[str, str] = {
    "generic": "{input}",
    "cqa": "Answer the question by choosing one of the answer choices.\n{input}\nAnswer:",
    "svamp": "Solve the math word problem. Write the equation.\n{input}\nEquation:",
    "nli": "Does the premise entail the hypothesis? Answer entailment, neutral or contradiction.\n{input}\nAnswer:",
}

# CQA rows (storage.adapters.cqa_input): "{question}\nAnswer Choices:\n(a) c0\n(b) c1\n...(e) c4".
# Only the block at the end of the input counts: the header line followed by nothing but choice
# lines "(x) text" up to the end, so a question that mentions "(a)" or "Answer Choices:" keeps it.
_CHOICE_LINES_TO_END = r"(?:\n\([a-e]\)[ \t][^\n]*)*\s*\Z"
SCAFFOLDING: dict[str, tuple[str, ...]] = {
    "cqa": (
        r"(?m)^Answer Choices:(?=\n\([a-e]\)[ \t][^\n]*" + _CHOICE_LINES_TO_END + ")",  # the header
        r"(?m)^\([a-e]\)(?=[ \t][^\n]*" + _CHOICE_LINES_TO_END + ")",  # the choice markers
    ),
    # NLI rows (storage.adapters.nli_input): "premise: {premise}\nhypothesis: {hypothesis}".
    "nli": (
        r"\Apremise:(?=[ \t])",  # the label opening the input
        r"(?m)^hypothesis:(?=[ \t][^\n]*\Z)",  # the label of the last line
    ),
}

FORMAT_TEMPLATES = {
    "cqa": "cqa", "svamp": "svamp", "esnli": "nli", "anli": "nli",
    "jsonl": "generic", "csv": "generic", "parquet": "generic",
}


@dataclass(frozen=True)
class Template:
    """A prompt template split around its `{input}` placeholder."""

    name: str
    prefix: str
    suffix: str
    scaffolding: tuple[str, ...] = ()
    """Regex patterns of scaffolding inside the row's input (SCAFFOLDING): never units, no score."""

    def render(self, text: str) -> tuple[str, int, int]:
        """(input_text, start, end): the text the teacher reads, and where the row's input lies in it."""
        start = len(self.prefix)
        return self.prefix + text + self.suffix, start, start + len(text)

    def scaffolding_spans(self, input_text: str, start: int, end: int) -> list[tuple[int, int]]:
        """[start, end) character spans of input_text (inside the input region) that are scaffolding."""
        region = input_text[start:end]
        return sorted((m.start() + start, m.end() + start)
                      for p in self.scaffolding for m in re.finditer(p, region) if m.end() > m.start())


def resolve_template(name_or_text: str, scaffolding: str | None = None) -> Template:
    """A Template from a name in TEMPLATES or a literal string with the field `{input}` exactly once.

    scaffolding: the key of SCAFFOLDING whose patterns apply (`none`: no scaffolding). None: the template's
    own entry (a named template in SCAFFOLDING; none for generic and literal templates). The scaffolding is a
    property of what ingest put inside the input, so a teacher that reads the bare input (generic) of an NLI
    dataset still sets `nli`.

    Literal templates go through `storage.templates.check_template`: plain `{field}` substitution
    only (`{{` / `}}` for literal braces), so attribute or index lookups, conversions and format
    specs (`{input.__class__}`, `{x[0]}`, `{x!r}`) are refused with a message saying what is allowed.
    """
    template = _template(name_or_text)
    return template if scaffolding is None else replace(template, scaffolding=scaffolding_patterns(scaffolding))


def scaffolding_patterns(name: str) -> tuple[str, ...]:
    """The SCAFFOLDING patterns of `name` (`none`: no patterns); an unknown name raises naming the choices."""
    if name != "none" and name not in SCAFFOLDING:
        raise ValueError(f"{name!r} is not one of {', '.join(sorted(SCAFFOLDING))}, none")
    return SCAFFOLDING.get(name, ())


def _template(name_or_text: str) -> Template:
    from storage.templates import TemplateError, check_template

    if name_or_text in TEMPLATES:
        prefix, suffix = TEMPLATES[name_or_text].split("{input}")
        return Template(name_or_text, prefix, suffix, SCAFFOLDING.get(name_or_text, ()))
    hint = f"use one of {', '.join(sorted(TEMPLATES))} or a literal template containing {{input}} exactly once"
    try:
        parsed = check_template(name_or_text, fields=["input"])
    except TemplateError as exc:
        raise ValueError(f"template={name_or_text!r}: {exc}; {hint}") from None
    slots = [i for i, (_, field) in enumerate(parsed.parts) if field == "input"]
    if len(slots) != 1:
        raise ValueError(f"template={name_or_text!r}: {hint}")
    literals = [literal for literal, _ in parsed.parts]
    return Template("custom", "".join(literals[: slots[0] + 1]), "".join(literals[slots[0] + 1:]), ())


def template_for_format(fmt: str | None) -> str:
    """The template name for a dataset format recorded at ingest (unknown formats -> generic)."""
    return FORMAT_TEMPLATES.get((fmt or "").lower(), "generic")


def scaffolding_for_format(fmt: str | None) -> str:
    """The SCAFFOLDING key for a dataset format recorded at ingest (`none` for formats without labels in the input)."""
    name = template_for_format(fmt)
    return name if name in SCAFFOLDING else "none"
