"""ERASER faithfulness on a hand-computed case; IG that converges; edge rows that never lie; the
teacher's distribution over choices; no extra forward for rows whose choice was already scored."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attribution_worker.engine import AttributionConfig, AttributionEngine
from attribution_worker.faithfulness import aopc_sizes, faithfulness
from attribution_worker.methods import score_sequences
from attribution_worker.units import Units


class LinearTeacher:
    """A teacher whose log p is computable by hand: log p(a | x) = log sigmoid(sum of w[token] over x).

    Implements the part of the Teacher protocol (teachers.Teacher) that forward scoring uses.
    """

    pad_id, padding_side, device = 0, "right", torch.device("cpu")

    def __init__(self, weights):
        self.w = torch.tensor(weights, dtype=torch.float32)

    def embed(self, ids):
        return self.w[ids].unsqueeze(-1)

    def logp(self, embeds, attention_mask, ans_ids, ans_mask):
        return torch.nn.functional.logsigmoid((embeds.squeeze(-1) * attention_mask).sum(1))


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_eraser_comprehensiveness_sufficiency_and_aopc_by_hand():
    w = [0.0, 2.0, -1.0, 0.5, 1.0]  # token ids 1..4 are the words w0..w3, one token each
    teacher = LinearTeacher(w)
    seq = [1, 2, 3, 4]
    units = Units(words=["w0", "w1", "w2", "w3"], spans=[(0, 2), (3, 5), (6, 8), (9, 11)], token_unit=[0, 1, 2, 3])
    scores = [4.0, 1.0, 3.0, 2.0]
    full = score_sequences(teacher, [seq], [[0]], 100)
    assert full[0] == pytest.approx(math.log(_sig(2.5)), abs=1e-6)
    (got,) = faithfulness(teacher, [seq], [units], [scores], [[0, 2]], [[0]], full, 100)
    # rationale {w0, w2}: without it x = {w1, w3} (sum 0); only it = {w0, w2} (sum 2.5)
    assert got["comprehensiveness"] == pytest.approx(_sig(2.5) - 0.5, abs=1e-6)
    assert got["sufficiency"] == pytest.approx(0.0, abs=1e-6)
    assert got["comprehensiveness_logprob"] == pytest.approx(math.log(_sig(2.5)) - math.log(0.5), abs=1e-6)
    assert got["sufficiency_logprob"] == pytest.approx(0.0, abs=1e-6)
    # AOPC sizes for 4 words: ceil(1%, 5%, 10%, 20%, 50% of 4) = 1, 1, 1, 1, 2
    assert aopc_sizes(4) == [1, 1, 1, 1, 2]
    top1 = (_sig(2.5) - _sig(0.5), _sig(2.5) - _sig(2.0))  # top-1 = {w0}: without sum 0.5, alone sum 2
    top2 = (_sig(2.5) - 0.5, 0.0)
    assert got["comprehensiveness_curve"] == pytest.approx([top1[0]] * 4 + [top2[0]], abs=1e-6)
    assert got["sufficiency_curve"] == pytest.approx([top1[1]] * 4 + [top2[1]], abs=1e-6)
    assert got["aopc_comprehensiveness"] == pytest.approx((4 * top1[0] + top2[0]) / 5, abs=1e-6)
    assert got["aopc_sufficiency"] == pytest.approx((4 * top1[1] + top2[1]) / 5, abs=1e-6)
    assert aopc_sizes(200) == [2, 10, 20, 40, 100]


def test_engine_rows_carry_probability_and_logprob_faithfulness(tiny_teachers, make_examples):
    engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], k=2, max_new_tokens=3))
    for row in engine.attribute(make_examples(5)):
        p = row["teacher_prob"]
        assert p == pytest.approx(math.exp(row["teacher_logprob"]), rel=1e-5)
        # the probability difference is the log-p difference seen through exp
        assert row["comprehensiveness"] == pytest.approx(p - math.exp(row["teacher_logprob"] - row["comprehensiveness_logprob"]), abs=1e-5)
        assert row["sufficiency"] == pytest.approx(p - math.exp(row["teacher_logprob"] - row["sufficiency_logprob"]), abs=1e-5)
        assert -1 <= row["comprehensiveness"] <= 1 and -1 <= row["sufficiency"] <= 1
        assert len(row["comprehensiveness_curve"]) == len(row["sufficiency_curve"]) == 5
        assert row["aopc_comprehensiveness"] == pytest.approx(np.mean(row["comprehensiveness_curve"]), abs=1e-6)


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_integrated_gradients_defaults_converge(tiny_teachers, make_examples, kind):
    """Median completeness error < 0.05 with the per-kind default baseline and steps."""
    engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers[kind], method="integrated_gradients",
                                                 max_new_tokens=3, faithfulness=False))
    out = engine.attribute(make_examples(12, seed=5))
    errors = [r["ig_completeness_error"] for r in out if r["error"] is None]
    assert len(errors) == 12 and all(e is not None for e in errors)
    assert float(np.median(errors)) < 0.05, errors
    assert {r["ig_steps"] for r in out} == {engine.ig_steps}
    if kind == "seq2seq":  # the zero baseline on T5 does not converge at the same steps: why the default is pad
        zero = AttributionEngine(AttributionConfig(teacher=tiny_teachers[kind], method="integrated_gradients",
                                                   baseline="zero", max_new_tokens=3, faithfulness=False))
        assert float(np.median([r["ig_completeness_error"] for r in zero.attribute(make_examples(12, seed=5))])) > 0.1


def test_max_ig_error_raises_the_steps_of_rows_above_it(tiny_teachers, make_examples):
    kw = dict(teacher=tiny_teachers["seq2seq"], method="integrated_gradients", baseline="pad", n_steps=4,
              max_new_tokens=3, faithfulness=False)
    rows = make_examples(8, seed=5)
    plain = AttributionEngine(AttributionConfig(**kw)).attribute(rows)
    assert max(r["ig_completeness_error"] for r in plain) > 0.05 and {r["ig_steps"] for r in plain} == {4}
    refined = AttributionEngine(AttributionConfig(**kw, max_ig_error=0.05, ig_max_steps=64)).attribute(rows)
    for before, after in zip(plain, refined):
        if before["ig_completeness_error"] <= 0.05:
            assert after["ig_steps"] == 4 and after["scores"] == before["scores"]  # untouched
        else:
            assert after["ig_steps"] > 4
            assert after["ig_completeness_error"] <= 0.05 or after["ig_steps"] == 64


def test_decoder_only_prompt_near_the_limit_is_an_error_row_not_an_index_error(tiny_teachers, make_examples):
    engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers["causal"], max_new_tokens=8, k=2))
    limit = engine.teacher.max_input_tokens
    n = len(engine.teacher.encode("cat " * 10)[0]) // 10
    long = " ".join(["cat"] * ((limit - 4) // max(1, n)))
    prompt_tokens = len(engine.teacher.encode(long)[0])
    assert prompt_tokens <= limit < prompt_tokens + 8  # fits alone, not with the answer
    good = make_examples(2)
    out = engine.attribute([good[0], {"example_id": "long", "input": long, "target": "cat"}, good[1]])
    assert out[0]["error"] is None and out[2]["error"] is None
    assert out[1]["error"].startswith(f"prompt is {prompt_tokens} tokens and the answer may be (--max-new-tokens) 8")
    assert "--max-new-tokens" in out[1]["error"]


def test_seq2seq_answer_of_only_padding_explains_exactly_what_was_generated(tiny_teachers, make_examples):
    """A greedy answer of pad tokens is explained as those tokens (never as an eos it did not generate)."""
    engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], max_new_tokens=3, k=2))
    with torch.no_grad():  # every logit equal: greedy decoding picks id 0, T5's pad, three times
        engine.teacher.model.lm_head.weight.zero_()
    t = engine.teacher
    assert t.pad_id == 0 and t.eos_id != 0
    out = engine.attribute([dict(r, choices=None) for r in make_examples(2)])  # free generation
    vocab = t.model.config.vocab_size
    for row in out:
        assert row["error"] is None and row["teacher_output"] == "<pad> <pad> <pad>"
        assert row["teacher_logprob"] == pytest.approx(3 * -math.log(vocab), rel=1e-5)  # uniform: by hand


def test_best_choice_is_explained_with_its_distribution_and_no_extra_forward(tiny_teachers, make_examples):
    engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], method="occlusion", template="cqa",
                                                 faithfulness=False, k=2))
    t = engine.teacher
    rows = [r for r in make_examples(8) if r["choices"]]
    forward_rows = []
    original = t.logp

    def counting_logp(embeds, *args):
        forward_rows.append(embeds.shape[0])
        return original(embeds, *args)

    t.logp = counting_logp
    out = engine.attribute(rows)
    t.logp = original
    n_words = sum(len(r["tokens"]) for r in out)
    n_choices = sum(len(r["choices"]) for r in rows)
    assert sum(forward_rows) == n_choices + n_words  # choices scored once, one row per occluded word, no re-score
    for row, ex in zip(out, rows):
        prepared = engine._prepare(0, ex)
        lp = score_sequences(t, [prepared.ids] * len(ex["choices"]),
                             [t.answer_ids(c, prepared.input_text) for c in ex["choices"]], 10_000)
        assert row["teacher_output"] == ex["choices"][int(np.argmax(lp))]  # the best choice was picked
        assert row["answer_choices"] == ex["choices"]
        assert row["answer_probs"] == pytest.approx(list(np.exp(lp) / np.exp(lp).sum()), abs=1e-5)
        assert row["teacher_logprob"] == pytest.approx(float(lp.max()), abs=1e-5)


def test_classifier_rows_carry_the_label_distribution(tiny_teachers, make_examples):
    engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers["classifier"], k=2, faithfulness=False))
    for row in engine.attribute(make_examples(3)):
        assert row["answer_choices"] == ["entailment", "neutral", "contradiction"]
        assert sum(row["answer_probs"]) == pytest.approx(1.0, abs=1e-5)
        best = int(np.argmax(row["answer_probs"]))
        assert row["teacher_output"] == row["answer_choices"][best]
        assert row["teacher_prob"] == pytest.approx(row["answer_probs"][best], rel=1e-4)


def test_ig_passes_never_exceed_the_token_budget(tiny_teachers, make_examples):
    from attribution_worker.methods import ig_steps_per_pass

    assert ig_steps_per_pass(rows=4, width=10, token_budget=100) == 2
    assert ig_steps_per_pass(rows=4, width=10, token_budget=30) == 1  # at least one copy
    assert ig_steps_per_pass(rows=1, width=10, token_budget=1000, requested=3) == 3  # a request can only lower it
    rows = make_examples(6)
    for budget in (128, 100_000):
        engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], method="integrated_gradients",
                                                     n_steps=8, token_budget=budget, faithfulness=False, max_new_tokens=2))
        t, passes = engine.teacher, []
        original = t.logp

        def spy(embeds, mask, ans_ids, ans_mask):
            if embeds.requires_grad:  # an IG pass (the no-grad rows are f(x), f(b) and choice scoring)
                passes.append((embeds.shape[0], embeds.shape[1], ans_ids.shape[1]))
            return original(embeds, mask, ans_ids, ans_mask)

        t.logp = spy
        out = engine.attribute(rows)
        assert all(r["error"] is None for r in out)
        if budget == 128:  # every pass holds at most the budget, or is one copy of a batch (itself within it)
            assert all(n * (width + a) <= budget or n * width <= budget for n, width, a in passes)
            assert len(passes) > len({(width, a) for _, width, a in passes})  # several passes per batch
        else:
            assert len(passes) == len(set(passes))  # one pass per batch: all 8 copies fit
