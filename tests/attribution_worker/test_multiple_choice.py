"""Multiple-choice teachers (AutoModelForMultipleChoice): the chosen choice is explained, its score
attributed to the question's words; checked against the model run on the tokenizer's own pairs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attribution_worker.engine import AttributionConfig, AttributionEngine
from attribution_worker.teachers import Teacher, pack_choices, unpack_choices

QUESTIONS = [
    ("where does the cat sit", ["mat", "tree", "red box"], "mat"),
    ("what ran under the big tree quickly", ["dog", "cat"], "dog"),
    ("the small house is near what", ["tree", "box", "mat", "dog"], "box"),
]


@pytest.fixture(scope="module")
def mc_teacher(tmp_path_factory):
    from attribution_worker.tiny import build_tiny_teacher

    texts = [q for q, _, _ in QUESTIONS] + [c for _, cs, _ in QUESTIONS for c in cs]
    # initializer_range 0.5: the default 0.02 gives a tiny random BERT whose choices all score alike,
    # and the best choice would be decided by rounding
    return str(build_tiny_teacher(tmp_path_factory.mktemp("mc"), kind="multiple_choice", texts=texts, seed=3,
                                  initializer_range=0.5))


def _engine(path, **kw):
    return AttributionEngine(AttributionConfig(teacher=path, **kw))


def _rows():
    return [{"example_id": f"q{i}", "input": q, "target": t, "choices": cs, "split": "test"}
            for i, (q, cs, t) in enumerate(QUESTIONS)]


def _reference_probs(teacher, question_text: str, choices: list[str]) -> np.ndarray:
    """The model on the tokenizer's own "[CLS] q [SEP] c [SEP]" pairs (not the engine's embedding path)."""
    enc = teacher.tokenizer([question_text] * len(choices), choices, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = teacher.model(**{k: v.unsqueeze(0) for k, v in enc.items()}).logits[0]
    return torch.softmax(logits.double(), -1).numpy()


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "occlusion"])
def test_chosen_choice_is_explained_on_the_question_words(mc_teacher, method):
    extra = {"max_ig_error": 0.05} if method == "integrated_gradients" else {}  # a sharp model: refine rows
    engine = _engine(mc_teacher, method=method, k=2, template="generic", **extra)
    t = engine.teacher
    assert t.kind == "multiple_choice" and isinstance(t, Teacher)
    out = engine.attribute(_rows())
    for row, (q, choices, target) in zip(out, QUESTIONS):
        assert row["error"] is None, row["error"]
        ref = _reference_probs(t, row["input_text"], choices)
        assert row["answer_choices"] == choices
        assert row["answer_probs"] == pytest.approx(list(ref), abs=1e-5)
        assert ref.max() - np.sort(ref)[-2] > 0.01  # a clear best choice
        assert row["teacher_output"] == choices[int(np.argmax(ref))]  # the best choice is the one explained
        assert row["teacher_logprob"] == pytest.approx(math.log(ref.max()), abs=1e-5)
        assert row["tokens"] == q.split()  # only the question's words are attributed, never the choices
        assert len(row["scores"]) == len(q.split()) and any(s != 0 for s in row["scores"])
        assert row["comprehensiveness"] is not None and -1 <= row["comprehensiveness"] <= 1
        if method == "integrated_gradients":
            assert row["ig_completeness_error"] <= 0.05


def test_gold_choice_and_rows_without_choices(mc_teacher):
    engine = _engine(mc_teacher, target="gold", k=2, faithfulness=False)
    rows = _rows() + [dict(_rows()[0], example_id="x", target="house"), dict(_rows()[0], example_id="y", choices=None)]
    out = engine.attribute(rows)
    for row, ex in zip(out[:3], rows):
        assert row["error"] is None and row["teacher_output"] == ex["target"]
        p = row["answer_probs"][ex["choices"].index(ex["target"])]
        assert row["teacher_logprob"] == pytest.approx(math.log(p), abs=1e-5)
    assert "not one of the row's choices" in out[3]["error"]
    assert "needs the row's choices" in out[4]["error"]


def test_saliency_gradient_flows_through_every_pair(mc_teacher):
    """d log p(chosen) / d question embeddings equals autograd on the tokenizer-built batch."""
    engine = _engine(mc_teacher, method="saliency", k=1, faithfulness=False)
    t = engine.teacher
    q, choices, _ = QUESTIONS[0]
    row = engine.attribute([_rows()[0]])[0]
    chosen = choices.index(row["teacher_output"])
    enc = t.tokenizer([row["input_text"]] * len(choices), choices, return_tensors="pt", padding=True)
    word_emb = t.model.get_input_embeddings()
    n_q = len(t.encode(row["input_text"])[0])
    q_emb = word_emb(enc["input_ids"][0, :n_q]).detach().clone().requires_grad_(True)
    full = word_emb(enc["input_ids"]).detach()
    x = torch.cat([q_emb.unsqueeze(0).expand(len(choices), -1, -1), full[:, n_q:]], dim=1)
    logits = t.model(inputs_embeds=x.unsqueeze(0), attention_mask=enc["attention_mask"].unsqueeze(0),
                     token_type_ids=enc["token_type_ids"].unsqueeze(0)).logits[0]
    (grad,) = torch.autograd.grad(torch.log_softmax(logits, -1)[chosen], q_emb)
    norms = grad.norm(dim=-1)[1:-1]  # the question's words, without [CLS] / [SEP]
    np.testing.assert_allclose(row["scores"], norms.numpy(), rtol=1e-4, atol=1e-6)


def test_pack_choices_round_trips():
    assert unpack_choices(pack_choices(1, [[5, 6], [], [7]])) == (1, [[5, 6], [], [7]])


def test_tiny_train_fits_a_multiple_choice_teacher(tmp_path):
    """train_tiny_teacher takes (input, target, choices) triples for a multiple-choice teacher: cross-entropy over
    the row's choices; the trained teacher picks the target, and a target outside its choices is refused."""
    from attribution_worker.tiny import build_tiny_teacher
    from attribution_worker.tiny_train import train_tiny_teacher

    texts = [q for q, _, _ in QUESTIONS] + [c for _, cs, _ in QUESTIONS for c in cs]
    path = build_tiny_teacher(tmp_path / "mc", kind="multiple_choice", texts=texts, seed=3)
    triples = [(q, t, cs) for q, cs, t in QUESTIONS]
    before = AttributionEngine(AttributionConfig(teacher=str(path), faithfulness=False)).attribute(_rows())
    stats = train_tiny_teacher(path, triples, steps=60, batch_size=3, lr=1e-2)
    assert stats["train_accuracy"] == 1.0 and stats["final_loss"] < 0.1, stats
    after = AttributionEngine(AttributionConfig(teacher=str(path), faithfulness=False)).attribute(_rows())
    assert [r["teacher_output"] for r in after] == [t for _, _, t in QUESTIONS]
    assert [r["answer_probs"] for r in after] != [r["answer_probs"] for r in before]
    with pytest.raises(ValueError, match="target one of the choices"):
        train_tiny_teacher(path, [("where does the cat sit", "dog", ["mat", "tree"])], steps=1)
    with pytest.raises(ValueError, match="target one of the choices"):
        train_tiny_teacher(path, [("where does the cat sit", "mat")], steps=1)


@pytest.mark.parametrize("kind", ["multiple_choice", "classifier"])
def test_micro_batches_give_the_whole_batch_update(tmp_path, monkeypatch, kind):
    """train_tiny_teacher(micro_batch=k) runs each step's batch in forward passes of at most k rows, and (dropout off)
    the teacher ends where the one-pass run ends, on all but 0.1% of its weights, with the same reported loss: each
    part's loss is divided by the whole batch's size."""
    from safetensors.torch import load_file

    from attribution_worker import tiny_train
    from attribution_worker.tiny import build_tiny_teacher

    texts = [q for q, _, _ in QUESTIONS] + [c for _, cs, _ in QUESTIONS for c in cs]
    if kind == "multiple_choice":
        pairs = [(q, t, cs) for q, cs, t in QUESTIONS] * 2
        extra = {}
    else:
        pairs = [(q, t) for q, _, t in QUESTIONS] * 2
        extra = {"labels": sorted({t for _, _, t in QUESTIONS})}
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    rows_per_pass = []
    real_pad = tiny_train.pad

    def counting_pad(seqs, *args):
        rows_per_pass.append(len(seqs))
        return real_pad(seqs, *args)

    monkeypatch.setattr(tiny_train, "pad", counting_pad)
    trained, losses = {}, {}
    for micro in (None, 2):
        path = build_tiny_teacher(tmp_path / f"{kind}-{micro}", kind=kind, texts=texts, seed=3,
                                  initializer_range=0.5, **extra, **no_dropout)
        rows_per_pass.clear()
        stats = tiny_train.train_tiny_teacher(path, pairs, steps=4, batch_size=5, lr=1e-2, micro_batch=micro)
        assert stats["steps"] == 4 and math.isfinite(stats["final_loss"])
        losses[micro] = stats["final_loss"]
        # inputs and answers are padded per pass (two calls each); the last calls are the accuracy check's
        passes = rows_per_pass[: 2 * 4 * (1 if micro is None else 3)]
        assert max(passes) == (5 if micro is None else 2) and sum(passes) == 2 * 4 * 5, passes
        trained[micro] = load_file(str(path / "model.safetensors"))
    assert losses[2] == pytest.approx(losses[None], rel=1e-4)  # the parts add up to the batch mean, as reported
    assert trained[None].keys() == trained[2].keys()
    # AdamW steps each weight by about lr whatever its gradient's size, so a weight whose gradient is near zero (a
    # sum of terms that cancel) can end a few 1e-4 apart when its parts are summed in another order: on one CPU 10 of
    # 4,096 weights of a 32x128 layer did, by up to 9e-4, while the rest agreed to 1e-6. So nearly every weight must
    # end where the one-pass run ends; a step that dropped or repeated a part moves most weights elsewhere.
    off = total = 0
    for name, whole in trained[None].items():
        if name.endswith("attention.self.key.bias") or (kind == "multiple_choice" and name == "classifier.bias"):
            continue  # gradient 0 up to rounding (a softmax ignores a shared shift), which AdamW scales to a full step
        off += int((~torch.isclose(trained[2][name], whole, rtol=1e-3, atol=2e-4)).sum())
        total += whole.numel()
    assert off <= total // 1000, f"{off} of {total} weights end elsewhere in micro-batches than in one pass"
    moved = 0.0
    start = build_tiny_teacher(tmp_path / f"{kind}-start", kind=kind, texts=texts, seed=3, initializer_range=0.5,
                               **extra, **no_dropout)
    for name, before in load_file(str(start / "model.safetensors")).items():
        moved = max(moved, float((trained[2][name] - before).abs().max()))
    assert moved > 1e-3  # the steps did move the weights: equal endings are not two untrained teachers
    with pytest.raises(ValueError, match="micro_batch must be at least 1"):
        tiny_train.train_tiny_teacher(start, pairs, steps=1, micro_batch=0)


def test_a_linear_schedule_warms_up_then_decays_to_nothing_and_a_constant_one_stays(tmp_path):
    """schedule="linear": the rate climbs over the first tenth of the steps, then falls linearly towards 0 (the rate
    of each update, as AdamW reads it); an early stop ends it where it stops; the default stays at `lr` throughout;
    another name is refused with the choices."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from attribution_worker import tiny_train
    from attribution_worker.tiny import build_tiny_teacher

    pairs = [(q, t) for q, _, t in QUESTIONS] * 2
    labels = sorted({t for _, _, t in QUESTIONS})
    texts = [q for q, _, _ in QUESTIONS] + labels
    rates = []
    hook = register_optimizer_step_pre_hook(lambda opt, args, kwargs: rates.append(opt.param_groups[0]["lr"]))
    lr, steps = 1e-2, 20
    traces, final = {}, {}
    try:
        for schedule, stop in (("linear", None), ("constant", None), ("linear", 0.0)):
            path = build_tiny_teacher(tmp_path / f"{schedule}-{stop}", kind="classifier", texts=texts, labels=labels,
                                      seed=3)
            rates.clear()
            stats = tiny_train.train_tiny_teacher(path, pairs, steps=steps, batch_size=4, lr=lr, schedule=schedule,
                                                  until_accuracy=stop, check_every=5)
            traces[schedule, stop], final[schedule, stop] = list(rates), stats["final_lr"]
    finally:
        hook.remove()
    linear = traces["linear", None]
    assert len(linear) == steps
    assert linear[:3] == pytest.approx([0.0, lr / 2, lr])  # two warm-up steps (a tenth of 20), then the peak
    assert all(a > b for a, b in zip(linear[2:], linear[3:]))  # falling every step after the peak
    assert linear[-1] == pytest.approx(lr / 18) and final["linear", None] == pytest.approx(lr / 18)  # 1/18 left
    assert traces["constant", None] == pytest.approx([lr] * steps) and final["constant", None] == lr
    # accuracy >= 0 is reached at the first check, after 5 steps: the schedule stops on its fifth rate
    assert traces["linear", 0.0] == pytest.approx(linear[:5]) and final["linear", 0.0] == pytest.approx(lr * 16 / 18)
    with pytest.raises(ValueError, match="schedule must be one of constant, linear .* got 'cosine'"):
        tiny_train.train_tiny_teacher(tmp_path / "linear-None", pairs, steps=1, schedule="cosine")
