"""Faithfulness of a rationale, per example (ERASER: DeYoung et al., ACL 2020, section 4).

  comprehensiveness = log p(a | x) - log p(a | x without the rationale words)   higher = more faithful
  sufficiency       = log p(a | x) - log p(a | rationale words only)            lower = more sufficient
Removal deletes the words' tokens from the sequence (ERASER deletes, it does not mask); template
and special tokens always stay. Both are computed with forward passes only, batched by the token
budget. `gold_overlap`: where the gold answer text occurs in the row's input (CQA lists the
choices), whether a rationale word overlaps an occurrence of it; None when it does not occur.
"""
from __future__ import annotations

import re

from .methods import score_sequences


def comprehensiveness_sufficiency(
    teacher, seqs: list[list[int]], units: list, rationales: list[list[int]], answers: list[list[int]],
    full_logp, token_budget: int,
) -> tuple[list[float], list[float]]:
    """Per example (comprehensiveness, sufficiency); rationales hold unit indices."""
    variants, variant_answers = [], []
    for seq, u, rat, ans in zip(seqs, units, rationales, answers):
        chosen = set(rat)
        without = [t for t, w in zip(seq, u.token_unit) if w < 0 or w not in chosen]
        only = [t for t, w in zip(seq, u.token_unit) if w < 0 or w in chosen]
        variants += [without, only]
        variant_answers += [ans, ans]
    lp = score_sequences(teacher, variants, variant_answers, token_budget)
    comp = [float(full_logp[i] - lp[2 * i]) for i in range(len(seqs))]
    suff = [float(full_logp[i] - lp[2 * i + 1]) for i in range(len(seqs))]
    return comp, suff


def gold_overlap(input_text: str, start: int, end: int, target: str | None, spans, rationale: list[int]) -> bool | None:
    """Whether a rationale unit overlaps an occurrence of the gold answer in the input region."""
    if not target or not target.strip():
        return None
    region = input_text[start:end]
    pattern = re.compile(r"(?<!\w)" + re.escape(target.strip()) + r"(?!\w)", re.IGNORECASE)
    hits = [(m.start() + start, m.end() + start) for m in pattern.finditer(region)]
    if not hits:
        return None
    return any(s < he and hs < e for r in rationale for (s, e) in [spans[r]] for hs, he in hits)
