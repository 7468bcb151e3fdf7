"""Prompt templates: data, not code paths.

A template is a string with one `{input}` placeholder; the teacher reads
`template.format(input=row["input"])` (the row's `input_text`). Template text is never a unit
and never gets a score: only the characters that came from the row's input are attributed.

TEMPLATES maps a name to its text (a plain table: add a format by adding a row). FORMAT_TEMPLATES maps
the dataset `format` recorded at ingest (catalog `datasets.format`) to a template name.
`resolve_template(name_or_text)` accepts a name from TEMPLATES or a literal template containing
`{input}`.
"""
from __future__ import annotations

from dataclasses import dataclass

TEMPLATES: dict[str, str] = {
    "generic": "{input}",
    "cqa": "Answer the question by choosing one of the answer choices.\n{input}\nAnswer:",
    "svamp": "Solve the math word problem. Write the equation.\n{input}\nEquation:",
    "nli": "Does the premise entail the hypothesis? Answer entailment, neutral or contradiction.\n{input}\nAnswer:",
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

    def render(self, text: str) -> tuple[str, int, int]:
        """(input_text, start, end): the text the teacher reads, and where the row's input lies in it."""
        start = len(self.prefix)
        return self.prefix + text + self.suffix, start, start + len(text)


def resolve_template(name_or_text: str) -> Template:
    """A Template from a name in TEMPLATES or a literal string containing `{input}` exactly once."""
    text = TEMPLATES.get(name_or_text, name_or_text)
    if text.count("{input}") != 1:
        raise ValueError(
            f"template={name_or_text!r}: use one of {', '.join(sorted(TEMPLATES))} "
            "or a literal template containing {input} exactly once"
        )
    prefix, suffix = text.split("{input}")
    return Template(name_or_text if name_or_text in TEMPLATES else "custom", prefix, suffix)


def template_for_format(fmt: str | None) -> str:
    """The template name for a dataset format recorded at ingest (unknown formats -> generic)."""
    return FORMAT_TEMPLATES.get((fmt or "").lower(), "generic")
