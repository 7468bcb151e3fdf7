"""Fit a teacher (a tiny one from tiny.py, or one from pretrained.py) on (input, target) pairs; saves it in place.

    path = build_tiny_teacher(tmp / "t5", texts=inputs + targets, d_model=64)
    stats = train_tiny_teacher(path, list(zip(inputs, targets)), steps=600)
    # -> {"steps", "seconds", "final_loss", "train_accuracy"}; path now holds the trained teacher

The loss is the one the engine explains: -log p(target | template(input)) for seq2seq and causal
teachers (teacher-forced, summed over target tokens, closing eos included), cross-entropy over the
labels for classifiers, cross-entropy over the row's choices for multiple-choice teachers (whose
pairs are (input, target, choices) triples). `word_dropout` replaces each input word's tokens by the pad id with that
probability during training (the teacher learns not to lean on any single filler word, and sees
inputs with holes in them, as occlusion and the faithfulness metrics present them).
"""
from __future__ import annotations

import random
import time

import torch

from .batching import pad
from .teachers import load_teacher, pack_choices, unpack_choices
from .templates import resolve_template
from .units import word_units


def train_tiny_teacher(
    path, pairs: list[tuple], *, template: str = "generic", steps: int = 600, batch_size: int = 32,
    lr: float = 3e-3, weight_decay: float = 0.0, word_dropout: float = 0.0, seed: int = 0,
    until_accuracy: float | None = None, check_every: int = 100,
) -> dict:
    """Train the teacher saved at `path` on `pairs` with AdamW; save it back; return training stats.

    until_accuracy: stop early once the greedy accuracy on (up to 512) training pairs reaches it,
    checked every `check_every` steps (small teachers learn such tasks in a sudden jump whose
    step varies with the seed; `steps` stays the upper bound).
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    teacher = load_teacher(str(path), device="cpu", dtype="fp32")
    model = teacher.model
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    tpl = resolve_template(template)
    encoded = []
    for text, target, *choices in pairs:
        input_text, start, end = tpl.render(text)
        ids, offsets, special = teacher.encode(input_text)
        units = word_units(input_text, start, end, offsets, special)
        if teacher.kind == "multiple_choice":
            if not choices or target not in choices[0]:
                raise ValueError(f"a multiple-choice teacher trains on (input, target, choices) with the target one "
                                 f"of the choices; got target {target!r} and choices {choices[0] if choices else None}")
            answer = pack_choices(choices[0].index(target), [teacher.choice_ids(c) for c in choices[0]])
        else:
            answer = teacher.answer_ids(target, input_text)
        encoded.append((ids, units.token_unit, answer))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)  # one kernel per update
    started = time.perf_counter()
    loss_value = float("nan")
    step = -1
    for step in range(steps):
        batch = rng.sample(encoded, min(batch_size, len(encoded)))
        seqs = []
        for ids, token_unit, _ in batch:
            if word_dropout > 0:
                n_units = max(token_unit) + 1
                drop = {u for u in range(n_units) if rng.random() < word_dropout}
                ids = [teacher.pad_id if u in drop else t for t, u in zip(ids, token_unit)]
            seqs.append(ids)
        x, m = pad(seqs, teacher.pad_id, teacher.padding_side)
        a, am = pad([b[2] for b in batch], teacher.pad_id, "right")
        loss = -teacher.logp(teacher._embedding(x), m, a, am).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        if until_accuracy is not None and (step + 1) % check_every == 0:
            model.eval()
            reached = _accuracy(teacher, encoded) >= until_accuracy
            model.train()
            if reached:
                break
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.save_pretrained(path)
    accuracy = _accuracy(teacher, encoded)
    return {"steps": step + 1, "seconds": round(time.perf_counter() - started, 2), "final_loss": loss_value,
            "train_accuracy": accuracy}


def _accuracy(teacher, encoded, limit: int = 512) -> float:
    """Share of (up to `limit`) pairs whose target is the teacher's greedy answer (first token for LMs; the
    highest-scoring choice for multiple-choice teachers)."""
    sample = encoded[:limit]
    x, m = pad([e[0] for e in sample], teacher.pad_id, teacher.padding_side)
    if teacher.kind == "multiple_choice":
        packed = [unpack_choices(e[2]) for e in sample]
        right = 0
        for i in range(0, len(sample), 32):
            lp = teacher.choice_logprobs(x[i:i + 32], m[i:i + 32], [c for _, c in packed[i:i + 32]])
            right += sum(int(k) == chosen for k, (chosen, _) in zip(lp.argmax(-1).tolist(), packed[i:i + 32]))
        return right / max(1, len(sample))
    answers = teacher.generate(x, m, max_new_tokens=max(len(e[2]) for e in sample))
    return sum(a[: len(e[2])] == e[2] for a, e in zip(answers, sample)) / max(1, len(sample))
