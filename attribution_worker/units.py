"""Units: the words of the row's input, their character spans, and token -> word aggregation.

A unit is a maximal run of non-space characters of the row's input (the part of input_text that
came from the dataset, not the template). Each non-special token whose character span overlaps
the input region belongs to the word that contains the token's first non-space character in that
region; template tokens, special tokens and padding belong to no unit and get no score. A word
that received no token (the tokenizer dropped it) is not a unit. Sub-word scores are summed.

Scaffolding inside the input (templates.SCAFFOLDING, e.g. CQA's `Answer Choices:` and `(a)` markers;
passed as character spans) is treated like whitespace: it splits words, is never part of a word, and a
token made only of scaffolding (and space) belongs to no unit, like template text.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"\S+")


@dataclass
class Units:
    """The attributable words of one example. spans index input_text; token_unit has one entry per token."""

    words: list[str]
    spans: list[tuple[int, int]]
    token_unit: list[int]  # unit index of each token, -1 for template / special / pad tokens

    def tokens_of(self, unit: int) -> list[int]:
        """Token positions of `unit`; the index is built once per row (linear in its tokens)."""
        by_unit = self.__dict__.get("_by_unit")
        if by_unit is None:
            by_unit = [[] for _ in self.words]
            for t, u in enumerate(self.token_unit):
                if u >= 0:
                    by_unit[u].append(t)
            self.__dict__["_by_unit"] = by_unit
        return by_unit[unit]

    def unit_mask(self) -> list[bool]:
        return [u >= 0 for u in self.token_unit]


def word_units(
    input_text: str, start: int, end: int, offsets: list[tuple[int, int]], special: list[int],
    scaffolding: list[tuple[int, int]] = (),
) -> Units:
    """Units of input_text[start:end] from a tokenizer's offsets and special-token flags.

    scaffolding: [start, end) character spans of input_text that are not content (no unit, no score).
    """
    region = input_text[start:end]
    if scaffolding:  # blank scaffolding out (same length, so offsets are unchanged)
        chars = list(region)
        for s, e in scaffolding:
            for i in range(max(s, start), min(e, end)):
                chars[i - start] = " "
        region = "".join(chars)
    words = [(m.start() + start, m.end() + start) for m in _WORD.finditer(region)]
    starts = [s for s, _ in words]
    raw = []
    for (s, e), sp in zip(offsets, special):
        s, e = max(s, start), min(e, end)
        if sp or e <= s:
            raw.append(-1)
            continue
        while s < e and region[s - start].isspace():
            s += 1
        w = bisect.bisect_right(starts, s) - 1
        raw.append(w if s < e and w >= 0 and s < words[w][1] else -1)
    used = sorted({w for w in raw if w >= 0})
    renumber = {w: i for i, w in enumerate(used)}
    return Units(
        words=[input_text[words[w][0]: words[w][1]] for w in used],
        spans=[words[w] for w in used],
        token_unit=[renumber.get(w, -1) for w in raw],
    )


def aggregate(token_scores, units: Units) -> np.ndarray:
    """Sum per-token scores ([>= n_tokens] floats; extra entries are padding) into per-unit scores."""
    scores = np.zeros(len(units.words), dtype=np.float64)
    ts = np.asarray(token_scores, dtype=np.float64)
    for t, u in enumerate(units.token_unit):
        if u >= 0:
            scores[u] += ts[t]
    return scores.astype(np.float32)


def top_k(scores, k: int) -> list[int]:
    """Indices of the k highest scores (ties -> earlier unit), returned in input order."""
    scores = np.asarray(scores, dtype=np.float64)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[: max(0, k)])
