"""Input templates: plain `{field}` substitution and nothing else.

A template such as "{question}\\nContext: {context}" builds a model input from a record's fields.
Python's str.format would also evaluate attribute and index lookups (`{input.__class__}`,
`{x[0]}`), conversions (`{x!r}`) and format specs (`{x:>10}`) on the values, which is a
format-string injection once templates arrive in REST job specs. `check_template` accepts only
literal text, `{{` / `}}` escapes and `{name}` fields, and `Template.render` substitutes them
itself (no str.format at render time). Used by `salient datasets add --input-template`; the REST
service and the attribution engine call the same function for job-spec templates.

    t = check_template("{premise} => {hypothesis}", fields=["premise", "hypothesis", "label"])
    t.fields                                  # ('premise', 'hypothesis')
    t.render({"premise": "A", "hypothesis": "B"})   # 'A => B'
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Iterable, Mapping

ALLOWED = "plain {field} substitution ({{ and }} for literal braces); no attribute or index lookup, conversion or format spec"
_FIELD = re.compile(r"[^.\[\]!:{}]+")


class TemplateError(ValueError):
    """The template uses more than plain {field} substitution, or names a field the records lack."""


@dataclass(frozen=True)
class Template:
    text: str
    parts: tuple[tuple[str, str | None], ...]
    """(literal text, field name or None) in order."""

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for _, f in self.parts if f is not None))

    def render(self, values: Mapping[str, str]) -> str:
        """Substitute `values` (already text); raises KeyError naming a missing field."""
        return "".join(literal + (values[name] if name is not None else "") for literal, name in self.parts)


def check_template(text: str, fields: Iterable[str] | None = None) -> Template:
    """Parse `text` as a template of plain `{field}`s; with `fields`, every field must be one of them.

    Raises TemplateError naming the template, the offending placeholder and what is allowed.
    """
    if not isinstance(text, str) or not text:
        raise TemplateError(f"template {text!r} is empty; write e.g. '{{question}}' ({ALLOWED})")
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"template {text!r} is not valid ({exc}); allowed: {ALLOWED}") from None
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None))
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if conversion or spec or not _FIELD.fullmatch(name) or name.strip().isdigit() or name != name.strip():
            raise TemplateError(f"template {text!r}: {shown} is not allowed; only {ALLOWED}")
        parts.append((literal, name))
    template = Template(text, tuple(parts))
    if not template.fields:
        raise TemplateError(f"template {text!r} names no field; write e.g. '{{question}}' ({ALLOWED})")
    if fields is not None:
        known = list(fields)
        missing = [f for f in template.fields if f not in known]
        if missing:
            raise TemplateError(f"template {text!r} names field {missing[0]!r}, which the records lack "
                                f"(fields: {', '.join(sorted(known))})")
    return template
