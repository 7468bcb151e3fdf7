"""Rationales the quality benchmark derives from the teacher's rows for its comparison arms: the oracle or PaLM
text in place of the teacher's words, PaLM's chain of thought projected onto the input's words, and the teacher's
words pointed at its answer's choice line (CQA) or its template's quantities (SVAMP templates).
"""
from __future__ import annotations

from student_trainer.data import norm_word


def with_rationale(rows: list[dict], texts: list[str], method: str) -> list[dict]:
    """Copies of `rows` whose rationale is replaced (the oracle / PaLM comparison runs)."""
    out = []
    for r, text in zip(rows, texts):
        words = (text or "").split()
        out.append({**r, "method": method, "rationale": words, "rationale_text": " ".join(words), "error": None})
    return out


def palm_projection(row: dict, text: str | None, common: set[str]) -> dict:
    """A copy of the teacher's row whose rationale is the input's words that the PaLM rationale uses.

    The extractive student tags input tokens, and a free-text chain of thought is not a set of input
    words, so the PaLM rationale is projected: every unit of the row (its `tokens`, in input order) whose
    normalised form (lower case, letters and digits) occurs in the PaLM text, leaving out `common`
    words. In input order, so `student_trainer.data.rationale_spans` finds each one's own span."""
    said = {norm_word(w) for w in (text or "").split()} - common - {""}
    words = [t for t in row["tokens"] or [] if norm_word(t) in said]
    return {**row, "method": "palm_cot_projected", "rationale": words, "rationale_text": " ".join(words), "error": None}


def with_answer_units(row: dict, answer: str | None, choices: list[str]) -> dict:
    """A copy of the teacher's row whose rationale points at `answer`, one of `choices`, as PaLM's does.

    CQA's input lists the choices, one per line ("(c) eat quickly"). The teacher's top-k saliency words
    spread over the question and several choices; a PaLM chain of thought on CQA names its answer. The
    new rationale keeps the teacher's top-k words outside the choice lines and adds every unit of the
    answer's line (point_at). The choice block is the one the engine's `cqa` scaffolding finds (the
    markers of a well-formed block at the end of the input), so a "(a)" inside the question is not a choice."""
    from attribution_worker.templates import resolve_template

    spans = row.get("spans") or []
    if answer not in choices:
        return row
    text = row["input_text"]
    markers = [(s, e) for s, e in resolve_template("generic", "cqa").scaffolding_spans(text, 0, len(text))
               if text[s] == "("]
    if len(markers) != len(choices):  # no well-formed choice block
        return row
    bounds = [e for _, e in markers], [s for s, _ in markers[1:]] + [len(text)]  # each line: marker end -> next marker
    lines = {c: {i for i, sp in enumerate(spans) if start <= sp["start"] and sp["end"] <= end}
             for c, (start, end) in enumerate(zip(*bounds))}
    answer_units = lines[choices.index(answer)]
    return point_at(row, answer_units, set().union(*lines.values()) - answer_units, "answer")


def with_quantity_units(row: dict, template: str | None) -> dict:
    """A copy of the teacher's row whose rationale points at the quantities `template` uses (SVAMP templates).

    The input names each quantity ("had n0 3 apples", student_trainer.equation_templates.mark_quantities); a
    PaLM chain of thought on SVAMP writes the equation, so it names the numbers it uses. The new rationale
    keeps the teacher's top-k words other than quantities and adds the name and the number of each quantity
    the template uses (point_at); the other quantities' names and numbers leave the rationale."""
    from student_trainer.equation_templates import NAME

    tokens = row.get("tokens") or []
    used = set(NAME.findall(template or ""))
    if not used:
        return row
    quantity = {i: norm_word(t) for i, t in enumerate(tokens[:-1]) if NAME.fullmatch(norm_word(t))}
    if not used <= set(quantity.values()):  # the template names a quantity the input lacks
        return row
    units = {name: {i, i + 1} for i, name in quantity.items()}
    answer_units = set().union(*(units[n] for n in used))
    return point_at(row, answer_units, set().union(*units.values()) - answer_units, "quantities")


def point_at(row: dict, answer_units: set[int], other_units: set[int], what: str) -> dict:
    """A copy of `row` whose rationale is its teacher's top-k units outside `other_units` plus every unit of
    `answer_units` (indices into `tokens`), in input order. The scores move to match (answer units above every
    other unit, `other_units` below), so the rationale stays the top-len(rationale) units by score and
    `student_trainer.data.rationale_spans` tags exactly those occurrences (the "eat" of "eat quickly", not an
    earlier "eat"). A row without a score and a span per unit is returned unchanged."""
    from student_trainer.data import rationale_spans

    tokens, spans, scores = row.get("tokens") or [], row.get("spans") or [], list(row.get("scores") or [])
    if len(scores) != len(tokens) or len(spans) != len(tokens):
        return row
    top = set(rationale_spans(row))
    kept = {i for i, sp in enumerate(spans) if (sp["start"], sp["end"]) in top} - other_units
    picked = sorted(answer_units | kept)
    finite = [x for x in scores if x == x]
    hi, lo = max(finite, default=0.0), min(finite, default=0.0)
    lift = hi - lo + 1.0

    def moved(i, x):
        if i in answer_units:
            return x + lift if x == x else hi + lift
        return x - lift if i in other_units and x == x else x
    scores = [moved(i, x) for i, x in enumerate(scores)]
    words = [tokens[i] for i in picked]
    return {**row, "method": f"{row['method']}+{what}", "rationale": words, "rationale_text": " ".join(words),
            "scores": scores}
