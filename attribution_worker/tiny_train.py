"""Fit a teacher (a tiny one from tiny.py, or one from pretrained.py) on (input, target) pairs; saves it in place.

    path = build_tiny_teacher(tmp / "t5", texts=inputs + targets, d_model=64)
    stats = train_tiny_teacher(path, list(zip(inputs, targets)), steps=600)
    # -> {"steps", "seconds", "final_loss", "train_accuracy", "median_step_seconds", "final_lr"}; path holds the teacher

The loss is the one the engine explains: -log p(target | template(input)) for seq2seq and causal
teachers (teacher-forced, summed over target tokens, closing eos included), cross-entropy over the
labels for classifiers, cross-entropy over the row's choices for multiple-choice teachers (whose
pairs are (input, target, choices) triples). `word_dropout` replaces each input word's tokens by the pad id with that
probability during training (the teacher learns not to lean on any single filler word, and sees
inputs with holes in them, as occlusion and the faithfulness metrics present them).

`micro_batch` splits each step's batch into chunks of at most that many examples, shortest inputs together,
and accumulates their gradients (each chunk's loss summed and divided by the whole batch's size): the same
rows and the same update, up to dropout masks and float summation order. On 2 CPU cores a multiple-choice
MiniLM step of 32 questions (160 question-choice pairs) ran 1.88x as fast in chunks of 8 questions
(`benchmarks/teacher_step.py`); the time goes to large activations more than to padding. Off by default, so a
teacher trained before is trained again bit for bit by the same call.

`schedule` sets the learning rate over the steps: "constant" (the default, so earlier teachers come back bit for
bit), or "linear": warm up from 0 over the first WARMUP_FRACTION of `steps` (none under 10 steps), then decay
linearly towards 0 at `steps`, the last update at lr / (steps - warm-up steps) (transformers'
get_linear_schedule_with_warmup, BERT's fine-tuning recipe). A constant rate ends wherever the last batches left
the weights; the linear one anneals them. On SVAMP's template teacher four linear draws (three seeds, two kernel
sets) landed within 1.5 test points where four constant ones spread over 8 (docs/quality-runs.md, "a linear
schedule for the SVAMP teacher"). An early stop (`until_accuracy`) ends the schedule before its last step.
"""
from __future__ import annotations

import random
import statistics
import time

import torch
from transformers import get_linear_schedule_with_warmup

from .batching import pad
from .teachers import load_teacher, pack_choices, unpack_choices
from .templates import resolve_template
from .units import word_units

SCHEDULES = ("constant", "linear")  # the learning rate over the steps (module docstring)
WARMUP_FRACTION = 0.1  # the linear schedule's warm-up, as a share of the steps (BERT's recipe)


def train_tiny_teacher(
    path, pairs: list[tuple], *, template: str = "generic", steps: int = 600, batch_size: int = 32,
    lr: float = 3e-3, weight_decay: float = 0.0, word_dropout: float = 0.0, seed: int = 0,
    until_accuracy: float | None = None, check_every: int = 100, micro_batch: int | None = None,
    schedule: str = "constant",
) -> dict:
    """Train the teacher saved at `path` on `pairs` with AdamW; save it back; return training stats.

    until_accuracy: stop early once the greedy accuracy on (up to 512) training pairs reaches it,
    checked every `check_every` steps (small teachers learn such tasks in a sudden jump whose
    step varies with the seed; `steps` stays the upper bound).
    micro_batch: at most this many examples per forward pass (module docstring); None: the whole batch.
    schedule: "constant" or "linear" (warm-up over WARMUP_FRACTION of `steps`, then linear decay; module docstring).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} (the learning rate over the steps), "
                         f"got {schedule!r}")
    if micro_batch is not None and micro_batch < 1:
        raise ValueError(f"micro_batch must be at least 1 (examples per forward pass), got {micro_batch}; "
                         "leave it out to run each step's batch in one pass")
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
    warmup = int(round(steps * WARMUP_FRACTION, 6))  # rounded first: 650 * 0.1 must give 65, never 64
    scheduler = get_linear_schedule_with_warmup(opt, warmup, steps) if schedule == "linear" else None
    used_lr = None  # the rate of the last update (none without steps)
    started = time.perf_counter()
    loss_value = float("nan")
    step = -1
    step_seconds = []
    for step in range(steps):
        step_started = time.perf_counter()
        batch = rng.sample(encoded, min(batch_size, len(encoded)))
        seqs = []
        for ids, token_unit, _ in batch:
            if word_dropout > 0:
                n_units = max(token_unit) + 1
                drop = {u for u in range(n_units) if rng.random() < word_dropout}
                ids = [teacher.pad_id if u in drop else t for t, u in zip(ids, token_unit)]
            seqs.append(ids)
        opt.zero_grad(set_to_none=True)
        loss_value = 0.0
        for chunk in _chunks(seqs, micro_batch):
            x, m = pad([seqs[i] for i in chunk], teacher.pad_id, teacher.padding_side)
            a, am = pad([batch[i][2] for i in chunk], teacher.pad_id, "right")
            logp = teacher.logp(teacher._embedding(x), m, a, am)
            # the batch mean, in parts; one pass keeps .mean(), so a teacher trained before is trained again bit for bit
            loss = -logp.mean() if len(chunk) == len(batch) else -logp.sum() / len(batch)
            loss.backward()
            loss_value += float(loss.detach())
        used_lr = opt.param_groups[0]["lr"]
        opt.step()
        if scheduler is not None:
            scheduler.step()
        step_seconds.append(time.perf_counter() - step_started)
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
            "train_accuracy": accuracy,
            "median_step_seconds": round(statistics.median(step_seconds), 3) if step_seconds else None,
            "final_lr": used_lr}


def _chunks(seqs: list[list[int]], micro_batch: int | None) -> list[list[int]]:
    """Index lists of a step's forward passes: all rows in order, or chunks of at most `micro_batch` rows by length."""
    if micro_batch is None or micro_batch >= len(seqs):
        return [list(range(len(seqs)))]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    return [order[i:i + micro_batch] for i in range(0, len(order), micro_batch)]


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
