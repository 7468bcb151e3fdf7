"""Templates from the wire are plain `{field}` substitution: no attribute or index lookups, no conversions.

    check_plain_template("{question}\\n{context}", "input_template")   # ok
    check_plain_template("{input.__class__}", "template")                # ValueError naming the field

`str.format` on a user template can walk attributes (`{x.__class__.__init__.__globals__}`); the
service refuses any replacement field that is not a bare name before the template reaches a reader.
"""
from __future__ import annotations

import string


def check_plain_template(template: str, field: str) -> str:
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{field}: {template!r} is not a valid template ({exc}); use plain {{field}} names") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{field}: {shown} is refused: templates allow only plain {{field}} names "
                             "(no attribute or index lookups, conversions or format specs)")
    return template
