"""Row selection and multi-task examples: dataset / job / SQL filter, errors skipped and counted."""
from __future__ import annotations

import pytest

from st_helpers import add_job, tiny_cfg, toy_rows, word_spans
from student_trainer.config import TrainConfig, field_docs
from student_trainer.data import load_data


def test_examples_are_multitask_and_errors_are_counted(toy):
    data = load_data(toy, tiny_cfg())
    assert data.counts["rows_read"] == 110
    assert data.counts["error_rows"] == 8  # rows 0, 10, ..., 70 of train
    assert len(data.train) + len(data.val) == 72 and len(data.test) == 30
    ex = data.train[0]
    assert ex.predict_input == "predict: " + ex.input and ex.explain_input == "explain: " + ex.input
    assert ex.label == ex.gold and ex.rationale in {"good", "great", "fine", "bad", "awful", "poor"}
    assert data.val and "hash of example_id" in data.val_source
    ids = {e.example_id for e in data.train} | {e.example_id for e in data.val}
    assert not any(i.endswith(("-0", "-10", "-70")) for i in ids)


def test_teacher_labels_train_only(toy):
    data = load_data(toy, tiny_cfg(labels="teacher"))
    assert any(e.label != e.gold for e in data.train)  # 10% of teacher answers are wrong
    assert all(e.label == e.teacher_output for e in data.train)
    assert all(e.label == e.gold for e in data.val + data.test)  # scoring is always against gold


def test_select_by_job_and_where(catalog):
    add_job(catalog, "toy", "jobA", {"train": toy_rows(40, "train", prefix="a"), "valid": toy_rows(10, "valid", prefix="a")})
    add_job(catalog, "toy", "jobB", {"train": toy_rows(20, "train", prefix="b")})
    add_job(catalog, "other", "jobC", {"train": toy_rows(50, "train", prefix="c")})
    both = load_data(catalog, tiny_cfg())
    assert both.counts["train"] == 60 and both.val_source == "valid" and both.counts["val"] == 10
    only_b = load_data(catalog, tiny_cfg(job="jobB", val_split="train"))
    assert {e.example_id[:1] for e in only_b.train} == {"b"}
    correct = load_data(catalog, tiny_cfg(where="teacher_correct AND job_id = 'jobA'"))
    assert all(e.label == e.teacher_output for e in correct.train) and {e.example_id[:1] for e in correct.train} == {"a"}
    assert correct.counts["rows_read"] < 50


def test_newest_duplicate_wins(catalog):
    old = toy_rows(30, "train")
    new = [dict(r, rationale=["NEW"], rationale_text="NEW") for r in old]
    add_job(catalog, "toy", "j-old", {"train": old})
    add_job(catalog, "toy", "j-new", {"train": new})
    data = load_data(catalog, tiny_cfg())
    assert data.counts["duplicates"] == 30
    assert {e.rationale for e in data.train + data.val} == {"NEW"}


def test_where_cannot_read_other_files(toy, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with pytest.raises(ValueError, match="--where"):
        load_data(toy, tiny_cfg(where=f"(SELECT count(*) FROM read_csv('{secret}')) > 0"))
    with pytest.raises(ValueError, match="--where"):
        load_data(toy, tiny_cfg(where="no_such_column = 1"))


def test_missing_dataset_names_the_fix(toy):
    with pytest.raises(ValueError, match="salient attribute"):
        load_data(toy, tiny_cfg(dataset="nope"))


@pytest.mark.parametrize("kwargs, flag", [
    ({"label_weight": 1.5}, "--label-weight"), ({"labels": "silver"}, "--labels"), ({"seeds": []}, "--seeds"),
    ({"steps": 0}, "--steps"), ({"warmup_steps": 500}, "--warmup-steps"), ({"dtype": "bf16", "device": "cpu"}, "--dtype"),
    ({"where": "1=1; DROP TABLE x"}, "--where"), ({"schedule": "step"}, "--schedule"),
])
def test_config_errors_name_the_flag(kwargs, flag):
    with pytest.raises(ValueError, match=flag):
        TrainConfig(dataset="toy", **kwargs)


def test_every_setting_is_documented():
    import dataclasses
    from pathlib import Path

    docs = field_docs()
    guide = (Path(__file__).resolve().parents[2] / "docs" / "trainer.md").read_text()
    for f in dataclasses.fields(TrainConfig):
        assert docs.get(f.name), f"TrainConfig.{f.name} has no docstring"
        assert f"--{f.name.replace('_', '-')}" in guide or f.name == "extra", f"docs/trainer.md lacks --{f.name}"


def test_pool_split_gives_disjoint_pools_that_do_not_depend_on_row_order():
    from student_trainer.data import pool_split

    rows = [{"example_id": f"e{i}", "input": f"x{i}"} for i in range(50)]
    teacher, student, val = pool_split(rows, [20, 10, 5], "toy", "--a / --b / --c")
    ids = [{r["example_id"] for r in pool} for pool in (teacher, student, val)]
    assert [len(s) for s in ids] == [20, 10, 5]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    again = pool_split(list(reversed(rows)), [20, 10, 5], "toy", "--a / --b / --c")
    assert [[r["example_id"] for r in p] for p in again] == [[r["example_id"] for r in p] for p in (teacher, student, val)]
    with pytest.raises(ValueError, match=r"toy: 50 rows < 40 \+ 10 \+ 5 .*ask for fewer rows \(--a / --b / --c\)"):
        pool_split(rows, [40, 10, 5], "toy", "--a / --b / --c")


def scored_row(i: int, split: str, text: str, scores: dict[str, float], rationale: list[str],
               default: float = 0.1) -> dict:
    """A row as the engine writes it for `text`: its whitespace words as units with their spans, each scored by
    `scores` (else `default`), and `rationale`; the label alternates yes / no and the teacher is right."""
    units = text.split()
    label = ["yes", "no"][i % 2]
    return dict(example_id=f"{split}-{i}", input_text=text, target_text=label, teacher_model="toy", method="saliency",
                teacher_output=label, teacher_correct=True, tokens=units, spans=word_spans(text, units),
                scores=[scores.get(u, default) for u in units], rationale=rationale, rationale_text=" ".join(rationale))


def test_rationale_max_df_leaves_common_words_out_of_the_training_target_only(catalog):
    def row(i: int, split: str) -> dict:
        cue = ["good", "bad"][i % 2]
        return scored_row(i, split, f"the film is {cue} and filler{i} ends",
                          {"the": 0.9, "is": 0.8, cue: 0.7, f"filler{i}": 0.6}, ["the", "is", cue])

    add_job(catalog, "toy", "j1", {s: [row(i, s) for i in range(n)] for s, n in (("train", 20), ("valid", 6), ("test", 6))})
    as_stored = load_data(catalog, tiny_cfg())
    assert {e.rationale.split()[0] for e in as_stored.train} == {"the"} and "common_words" not in as_stored.counts
    data = load_data(catalog, tiny_cfg(rationale_max_df=0.5))
    assert data.counts["common_words"] == 5  # the, film, is, and, ends: in every input (each cue word in half of them)
    for ex in data.train:
        assert ex.rationale.split() == [ex.input.split()[3], ex.input.split()[5]]  # cue, filler: the only content words left
        assert [ex.input[s:e] for s, e in ex.rationale_spans] == ex.rationale.split()
    assert all(e.rationale.startswith("the is") for e in data.val + data.test)  # held-out rows stay as stored
    assert data.counts["rationale_repicked"] == 20 and data.counts["rationale_all_common"] == 0
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="--rationale-max-df"):
            tiny_cfg(rationale_max_df=bad)


def test_rationale_fraction_tags_a_share_of_each_training_input(catalog):
    def row(i: int, split: str) -> dict:  # 4 words or 12 words; the stored rationale is the top 2 of either
        words = [f"w{j}" for j in range(4 if i % 2 else 12)]
        return scored_row(i, split, " ".join(words), {w: 1.0 - j / 20 for j, w in enumerate(words)}, words[:2])

    add_job(catalog, "toy", "j1", {s: [row(i, s) for i in range(n)] for s, n in (("train", 10), ("valid", 4), ("test", 4))})
    data = load_data(catalog, tiny_cfg(rationale_fraction=0.25))
    for ex in data.train:
        n = len(ex.input.split())
        assert ex.rationale.split() == ex.input.split()[:n // 4]  # 1 of 4 words, 3 of 12: the highest-scoring
        assert [ex.input[s:e] for s, e in ex.rationale_spans] == ex.rationale.split()
    assert all(len(e.rationale.split()) == 2 for e in data.val + data.test)  # held-out rows stay as stored
    assert data.counts["rationale_repicked"] == 10 and "common_words" not in data.counts
    for bad in (0.0, 1.5, float("nan"), "a fifth"):
        with pytest.raises(ValueError, match="--rationale-fraction"):
            tiny_cfg(rationale_fraction=bad)
    with pytest.raises(ValueError, match="--rationale-fraction.*--rationale-target soft"):
        tiny_cfg(student="extractive", checkpoint="x", rationale_target="soft", rationale_fraction=0.2)


def test_soft_rationale_target_weighs_every_training_word_by_its_saliency(catalog):
    import torch

    from student_trainer.presets import load_tokenizer
    from student_trainer.students import ExtractiveKind, label_space

    from st_helpers import tiny_bert

    def row(i: int, split: str) -> dict:
        cue = ["good", "bad"][i % 2] + ","
        scores = {"the": 0.5, "film": 0.25, "is": 1.0, cue: 2.0, "really": float("nan")}
        # row 0: no positive score, nothing to tag
        return scored_row(i, split, f"the film is {cue} really", scores if i else {}, ["is", cue], default=0.0)

    add_job(catalog, "toy", "j1", {s: [row(i, s) for i in range(n)] for s, n in (("train", 8), ("valid", 4), ("test", 4))})
    bert = str(tiny_bert(catalog.store.local_dir / "tiny-bert"))
    cfg = tiny_cfg(student="extractive", checkpoint=bert, rationale_target="soft")
    assert all(not e.tag_weights for e in load_data(catalog, tiny_cfg()).train)  # top_k: as before
    data = load_data(catalog, cfg)
    assert data.counts["soft_rows"] == 7 and data.counts["soft_untagged"] == 1
    ex = next(e for e in data.train if e.example_id == "train-1")
    assert [(ex.input[s:e], w) for s, e, w in ex.tag_weights] == [
        ("the", 0.25), ("film", 0.125), ("is", 0.5), ("bad,", 1.0), ("really", 0.0)]  # over the top; NaN weighs 0
    assert not next(e for e in data.train if e.example_id == "train-0").tag_weights
    assert all(not e.tag_weights for e in data.val + data.test)  # a training target only
    with_df = load_data(catalog, tiny_cfg(student="extractive", checkpoint=bert, rationale_target="soft",
                                           rationale_max_df=0.5))  # the, film, is, really: common
    assert [w for *_, w in next(e for e in with_df.train if e.example_id == "train-1").tag_weights] == [0, 0, 0, 1.0, 0]

    tok = load_tokenizer(bert)
    kind = ExtractiveKind(cfg, tok, label_space(data.train))
    ids, _, _, tags, _ = kind.encode([ex], "cpu")
    by_token = [(tok.decode([t]), y) for t, y in zip(ids[0].tolist(), tags[0].tolist())]
    assert by_token[0] == ("[CLS]", -1.0) and by_token[-1] == ("[SEP]", -1.0)
    assert [y for _, y in by_token[1:-1]] == [
        w for s, e, w in ex.tag_weights for _ in tok(ex.input[s:e], add_special_tokens=False)["input_ids"]]
    model = kind.build(0).eval()  # no dropout: the reference below sees the same logits
    _, parts = kind.loss(model, data.train, 0.5, 0.0, "cpu")
    tagged = [e for e in data.train if e.tag_weights]  # the BCE is over the soft targets of rows that have them
    ids, mask, types, tags, _ = kind.encode(tagged, "cpu")
    with torch.no_grad():
        tag_logits = model(ids, mask, types)[1]
    real = tags >= 0
    bce = torch.nn.functional.binary_cross_entropy_with_logits(tag_logits[real], tags[real])
    assert parts["rationale_loss"] == pytest.approx(float(bce), rel=1e-5)
    with pytest.raises(ValueError, match="--rationale-target.*--student extractive"):
        tiny_cfg(student="tiny", rationale_target="soft")
    with pytest.raises(ValueError, match="--rationale-target.*top_k, soft"):
        tiny_cfg(rationale_target="smooth")


def test_a_setting_added_later_keeps_the_fingerprints_of_runs_made_before_it():
    # 44d6d09d3419fbfb: TrainConfig(dataset="toy").fingerprint() before --rationale-max-df existed (commit efba8a2);
    # a run registered then must not look changed to `retrain` now
    cfg = TrainConfig(dataset="toy")
    assert cfg.fingerprint() == "44d6d09d3419fbfb"
    assert TrainConfig(dataset="toy", rationale_max_df=0.1).fingerprint() != cfg.fingerprint()
    assert TrainConfig(dataset="toy", rationale_fraction=0.2).fingerprint() != cfg.fingerprint()
    assert TrainConfig(dataset="toy", rationale_max_df=1).fingerprint() == TrainConfig(dataset="toy", rationale_max_df=1.0).fingerprint()
    assert TrainConfig(dataset="toy", rationale_target="soft", student="extractive", checkpoint="x").fingerprint() != \
        TrainConfig(dataset="toy", student="extractive", checkpoint="x").fingerprint()
