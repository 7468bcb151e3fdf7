"""Batching by a token budget, and padding.

Examples are sorted by length (longest first, so a batch that does not fit in memory fails at once)
and cut greedily so that `rows * longest_row <= token_budget`; a row longer than the budget is a
batch of one. Padding never changes a score: every forward takes an attention mask, and causal
teachers get explicit position ids (teachers.py).
"""
from __future__ import annotations

import torch


def length_batches(lengths: list[int], token_budget: int) -> list[list[int]]:
    """Index batches over `lengths` (tokens per row, padding included), each within the budget."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = max(1, lengths[i])
        if current and (len(current) + 1) * max(longest, n) > token_budget:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def pad(seqs: list[list[int]], pad_id: int, side: str = "right", device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [B, L] long, mask [B, L] long) with `pad_id` on `side` ("right" | "left")."""
    width = max(1, max((len(s) for s in seqs), default=1))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if not seq:
            continue
        if side == "left":
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        else:
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def chunks(n: int, size: int) -> list[range]:
    size = max(1, size)
    return [range(i, min(n, i + size)) for i in range(0, n, size)]
