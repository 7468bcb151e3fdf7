"""The trainer fixes from the review: each test here fails on the code before its fix."""
from __future__ import annotations

import os

import pytest
import torch

from st_helpers import add_job, tiny_cfg, toy_rows
from student_trainer.data import Example, load_data
from student_trainer.presets import build_student, build_tokenizer, tokenizer_for
from student_trainer.registry import save_model
from student_trainer.train import step_loss, task_loss


def _ex(i: int, rationale: str = "") -> Example:
    return Example(f"e{i}", "train", f"the movie was good {i}", "yes", "yes", rationale)


def test_batch_without_rationales_weights_label_loss_by_a():
    batch = [_ex(i) for i in range(4)]
    tok = build_tokenizer(["predict: explain: yes no the movie was good 0 1 2 3"])
    model = build_student("tiny", tok, seed=0)
    cfg = tiny_cfg()
    model.eval()
    with torch.no_grad():
        label = task_loss(model, tok, [e.predict_input for e in batch], [e.label for e in batch], cfg, "cpu")
        loss, parts = step_loss(model, tok, batch, 0.3, cfg, "cpu")
        base, _ = step_loss(model, tok, batch, 1.0, cfg, "cpu")
    assert float(loss) == pytest.approx(0.3 * float(label))  # the student's label term always weighs a
    assert float(base) == pytest.approx(float(label))  # the baseline (a = 1) is label-only


def test_word_vocabulary_comes_from_training_rows_only(catalog):
    test_rows = [dict(r, input_text=r["input_text"] + " zebra", tokens=r["tokens"] + ["zebra"])
                 for r in toy_rows(10, "test")]
    valid_rows = [dict(r, input_text=r["input_text"] + " okapi") for r in toy_rows(10, "valid")]
    add_job(catalog, "toy", "j", {"train": toy_rows(40, "train"), "valid": valid_rows, "test": test_rows})
    data = load_data(catalog, tiny_cfg())
    tok = tokenizer_for("tiny", None, data.texts())
    vocab = tok.get_vocab()
    assert "good" in vocab or "bad" in vocab
    assert "zebra" not in vocab and "okapi" not in vocab  # held-out words would leak into the student


def test_load_data_streams_only_the_rows_it_uses(catalog):
    add_job(catalog, "toy", "j", {"train": toy_rows(400, "train"), "valid": toy_rows(12, "valid"),
                                  "test": toy_rows(9, "test"), "extra": toy_rows(50, "extra")})
    data = load_data(catalog, tiny_cfg(max_train_rows=10))
    assert len(data.train) == 10 and len(data.val) == 12 and len(data.test) == 9
    assert data.counts["rows_read"] == 471 and data.counts["other_split"] == 50
    assert data.counts["rows_fetched"] == 10 + 12 + 9  # not every row of the dataset into Python
    again = load_data(catalog, tiny_cfg(max_train_rows=10, seeds=[1]))
    assert [e.example_id for e in again.train] == [e.example_id for e in data.train]  # same rows for every seed


def test_model_directory_swap_never_leaves_it_missing(tmp_path, monkeypatch):
    tok = build_tokenizer(["a b c"])
    model = build_student("tiny", tok, seed=0)
    target = tmp_path / "run" / "model"
    save_model(model, tok, target)
    real_replace = os.replace
    seen = []

    def watching_replace(src, dst):
        real_replace(src, dst)
        seen.append((target / "config.json").exists())

    monkeypatch.setattr(os, "replace", watching_replace)
    save_model(build_student("tiny", tok, seed=1), tok, target)
    monkeypatch.undo()
    assert seen and all(seen)  # after every rename a reader finds a whole model directory
    assert (target / "config.json").exists() and (target / "tokenizer.json").exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".model.") and not p.is_symlink()
                and p.resolve() != target.resolve()]  # the previous version is cleaned up


def test_failed_save_keeps_the_previous_model(tmp_path):
    tok = build_tokenizer(["a b c"])
    target = tmp_path / "model"
    save_model(build_student("tiny", tok, seed=0), tok, target)
    before = sorted(p.name for p in target.iterdir())

    class Broken:
        def save_pretrained(self, d):
            (d / "config.json").write_text("{half")
            raise OSError("disk full")

    with pytest.raises(OSError):
        save_model(Broken(), tok, target)
    assert sorted(p.name for p in target.iterdir()) == before
    assert "{half" not in (target / "config.json").read_text()
