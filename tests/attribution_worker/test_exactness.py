"""The numbers are right: batched == one at a time, == Captum, == a naive occlusion loop, repeatable."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution_worker.batching import pad
from attribution_worker.engine import AttributionConfig, AttributionEngine
from attribution_worker.methods import METHODS, baseline_embeds, gradient_scores

KINDS = ("seq2seq", "causal", "classifier")


def _engine(path, method, **kw):
    kw.setdefault("k", 3)
    kw.setdefault("n_steps", 6)
    kw.setdefault("template", "cqa")
    return AttributionEngine(AttributionConfig(teacher=path, method=method, max_new_tokens=4, **kw))


def _close(a, b, rtol=1e-4, scale=0.0):
    """Relative closeness; differences of log-probs (occlusion, faithfulness) are compared relative to
    the log-probs they are made of (`scale`), since float32 log p carries ~1e-7 relative error."""
    a, b = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x for x in (a, b))
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0), abs(scale), 1e-12)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_batched_equals_one_at_a_time(tiny_teachers, make_examples, kind, method):
    engine = _engine(tiny_teachers[kind], method)
    rows = make_examples(6)
    batched = engine.attribute(rows)
    assert len({len(r["tokens"]) for r in batched}) > 2, "rows must differ in length so batches pad"
    for row, one in zip(batched, (engine.attribute([r])[0] for r in rows)):
        assert row["error"] is None and one["error"] is None, (row["error"], one["error"])
        assert row["teacher_output"] == one["teacher_output"]
        assert row["tokens"] == one["tokens"]
        logp_scale = abs(row["teacher_logprob"]) if method == "occlusion" else 0.0
        _close(row["scores"], one["scores"], scale=logp_scale)
        _close([row["teacher_logprob"], row["comprehensiveness"], row["sufficiency"]],
               [one["teacher_logprob"], one["comprehensiveness"], one["sufficiency"]], scale=row["teacher_logprob"])


@pytest.mark.parametrize("kind", KINDS)
def test_two_runs_identical_and_teacher_frozen(tiny_teachers, make_examples, kind):
    engine = _engine(tiny_teachers[kind], "saliency", k=8)
    assert not engine.teacher.model.training
    assert not any(p.requires_grad for p in engine.teacher.model.parameters())
    rows = make_examples(5)
    first, second = engine.attribute(rows), engine.attribute(rows)
    assert [r["scores"] for r in first] == [r["scores"] for r in second]
    assert [r["rationale"] for r in first] == [r["rationale"] for r in second]


def _batch(engine, rows):
    """A padded batch of prepared rows with their explained answers (the engine's own steps)."""
    t = engine.teacher
    prepared = [engine._prepare(i, r) for i, r in enumerate(rows)]
    ids, mask = pad([p.ids for p in prepared], t.pad_id, t.padding_side, t.device)
    answers = engine._answers(prepared, ids, mask).ids
    ans_ids, ans_mask = t.answer_tensors(answers)
    unit = torch.zeros_like(mask, dtype=torch.bool)
    for r, p in enumerate(prepared):
        off = ids.shape[1] - len(p.ids) if t.padding_side == "left" else 0
        unit[r, off: off + len(p.ids)] = torch.tensor(p.units.unit_mask())
    return prepared, ids, mask, ans_ids, ans_mask, unit


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_methods_equal_captum(tiny_teachers, make_examples, kind):
    from captum.attr import InputXGradient, IntegratedGradients, Saliency

    engine = _engine(tiny_teachers[kind], "saliency")
    t = engine.teacher
    _, ids, mask, ans_ids, ans_mask, unit = _batch(engine, make_examples(5))
    embeds = t.embed(ids)
    args = (mask, ans_ids, ans_mask)
    forward = t.logp  # the same forward function: (embeds, mask, ans_ids, ans_mask) -> [B] log p(answer)

    ours = gradient_scores(t, "saliency", ids, mask, ans_ids, ans_mask, unit).scores
    grad = Saliency(forward).attribute(embeds.clone().requires_grad_(True), additional_forward_args=args, abs=False)
    _close(ours, grad.norm(dim=-1) * unit)

    ours = gradient_scores(t, "input_x_gradient", ids, mask, ans_ids, ans_mask, unit).scores
    ixg = InputXGradient(forward).attribute(embeds.clone().requires_grad_(True), additional_forward_args=args)
    _close(ours, ixg.sum(-1).abs() * unit)

    for baseline in ("zero", "pad"):
        ours = gradient_scores(t, "integrated_gradients", ids, mask, ans_ids, ans_mask, unit, n_steps=7, baseline=baseline).scores
        base = baseline_embeds(t, embeds, unit, baseline)
        ig = IntegratedGradients(forward).attribute(
            embeds.clone().requires_grad_(True), baselines=base, additional_forward_args=args, n_steps=7, method="gausslegendre")
        _close(ours, ig.sum(-1).abs() * unit)
    # steps split over several passes give the same integral
    split = gradient_scores(t, "integrated_gradients", ids, mask, ans_ids, ans_mask, unit, n_steps=7, steps_per_pass=3).scores
    full = gradient_scores(t, "integrated_gradients", ids, mask, ans_ids, ans_mask, unit, n_steps=7).scores
    _close(split, full)


@pytest.mark.parametrize("kind", KINDS)
def test_occlusion_equals_naive_loop(tiny_teachers, make_examples, kind):
    engine = _engine(tiny_teachers[kind], "occlusion", token_budget=64)  # small budget: several batches
    t = engine.teacher
    rows = make_examples(4)
    out = engine.attribute(rows)
    prepared, ids, mask, ans_ids, ans_mask, _ = _batch(engine, rows)

    def logp_one(seq, r):
        x, m = pad([seq], t.pad_id, t.padding_side, t.device)
        a = ans_ids[r: r + 1, : int(ans_mask[r].sum())]
        with torch.no_grad():
            return float(t.logp(t.embed(x), m, a, torch.ones_like(a)))

    for r, (p, row) in enumerate(zip(prepared, out)):
        full = logp_one(p.ids, r)
        naive = []
        for w in range(len(p.units.words)):
            seq = [t.mask_id if p.units.token_unit[i] == w else tok for i, tok in enumerate(p.ids)]
            naive.append(full - logp_one(seq, r))
        _close(row["scores"], naive, scale=full)
        _close([row["teacher_logprob"]], [full])


@pytest.mark.parametrize("kind", KINDS)
def test_pad_special_and_template_tokens_get_no_score(tiny_teachers, make_examples, kind):
    engine = _engine(tiny_teachers[kind], "integrated_gradients")
    t = engine.teacher
    rows = make_examples(5)
    rows[0]["input"] = "Answer the cat ( question ) sat"  # template words inside the input are units
    prepared, ids, mask, ans_ids, ans_mask, unit = _batch(engine, rows)
    for method in ("saliency", "input_x_gradient", "integrated_gradients"):
        scores = gradient_scores(t, method, ids, mask, ans_ids, ans_mask, unit, n_steps=4).scores
        assert (scores[~unit] == 0).all()
        assert (scores[unit] != 0).any()
    special = set(t.tokenizer.all_special_ids)
    assert unit.sum() < mask.sum(), "the template and special tokens are not units"
    assert not any(int(i) in special for i in ids[unit].tolist())
    out = engine.attribute(rows)
    for row, ex in zip(out, rows):
        assert row["tokens"] == ex["input"].split()  # the words of the input, no template / special units
        assert [row["input_text"][s["start"]: s["end"]] for s in row["spans"]] == row["tokens"]
        assert len(row["scores"]) == len(row["tokens"])
    assert out[0]["input_text"].startswith("Answer the question by choosing")
