"""Faithfulness of a rationale, per example (ERASER: DeYoung et al., ACL 2020, section 4).

With p = p(a | .) the teacher's probability of the explained answer a (all its tokens):

  comprehensiveness = p(a | x) - p(a | x without the rationale words)    higher = more faithful
  sufficiency       = p(a | x) - p(a | rationale words only)            lower = more sufficient
  *_logprob         the same differences of log p (schema v2's values)
  AOPC              for each size in AOPC_FRACTIONS (1, 5, 10, 20, 50% of the row's words, at
                    least one), the top-scoring words of that size: the per-size differences
                    (*_curve) and their mean (aopc_*), as ERASER reports it.

Removal deletes the words' tokens from the sequence (ERASER deletes, it does not mask); template
and special tokens always stay. Everything is forward passes only, every variant of every row in
one call batched by the token budget; identical variants (a size that equals k, two sizes that
round to the same count) are scored once. `gold_overlap`: where the gold answer text occurs in the
row's input (CQA lists the choices), whether a rationale word overlaps an occurrence; None when
it does not occur.
"""
from __future__ import annotations

import math
import re

import numpy as np

from .constants import AOPC_FRACTIONS
from .methods import score_sequences
from .units import top_k

FAITHFULNESS_COLUMNS = ("comprehensiveness", "sufficiency", "comprehensiveness_logprob", "sufficiency_logprob",
                        "aopc_comprehensiveness", "aopc_sufficiency", "comprehensiveness_curve", "sufficiency_curve")


def aopc_sizes(n_words: int) -> list[int]:
    """Rationale sizes (words) for AOPC_FRACTIONS of a row with n_words words: ceil(f * n), at least 1."""
    return [min(n_words, max(1, math.ceil(f * n_words - 1e-9))) for f in AOPC_FRACTIONS]


def faithfulness(teacher, seqs: list[list[int]], units: list, scores: list, rationales: list[list[int]],
                 answers: list[list[int]], full_logp, token_budget: int) -> list[dict]:
    """Per example a dict keyed by FAITHFULNESS_COLUMNS; rationales hold unit indices, scores unit scores."""
    variants: list[list[int]] = []
    answer_of: list[list[int]] = []
    index: dict[tuple, int] = {}  # (row, kind, word set) -> variant

    def variant(i: int, kind: str, chosen: frozenset) -> int:
        key = (i, kind, chosen)
        if key not in index:
            keep = (lambda w: w < 0 or w not in chosen) if kind == "without" else (lambda w: w < 0 or w in chosen)
            index[key] = len(variants)
            variants.append([t for t, w in zip(seqs[i], units[i].token_unit) if keep(w)])
            answer_of.append(answers[i])
        return index[key]

    plan = []
    for i, (u, rat) in enumerate(zip(units, rationales)):
        rat_set = frozenset(rat)
        sets = [frozenset(top_k(scores[i], s)) for s in aopc_sizes(len(u.words))]
        plan.append(((variant(i, "without", rat_set), variant(i, "only", rat_set)),
                     [(variant(i, "without", s), variant(i, "only", s)) for s in sets]))
    lp = score_sequences(teacher, variants, answer_of, token_budget) if variants else np.zeros(0)
    out = []
    for i, ((w, o), curve) in enumerate(plan):
        full = float(full_logp[i])
        p_full = math.exp(full)
        comp_curve = [p_full - math.exp(lp[a]) for a, _ in curve]
        suff_curve = [p_full - math.exp(lp[b]) for _, b in curve]
        out.append({
            "comprehensiveness": p_full - math.exp(lp[w]),
            "sufficiency": p_full - math.exp(lp[o]),
            "comprehensiveness_logprob": full - float(lp[w]),
            "sufficiency_logprob": full - float(lp[o]),
            "aopc_comprehensiveness": float(np.mean(comp_curve)),
            "aopc_sufficiency": float(np.mean(suff_curve)),
            "comprehensiveness_curve": comp_curve,
            "sufficiency_curve": suff_curve,
        })
    return out


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
