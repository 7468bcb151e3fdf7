"""Teachers from a pretrained checkpoint (attribution_worker.pretrained): a new head over the given labels, the
same head for the same seed, a classifier the engine answers with, and bad label sets refused."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small BERT saved by path: the same code path as a hub id or the MiniLM directory."""
    from attribution_worker.tiny import build_tiny_teacher

    texts = ["premise: a man sleeps hypothesis: a man rests", "premise: two dogs run hypothesis: cats sit"]
    return str(build_tiny_teacher(tmp_path_factory.mktemp("bert"), kind="classifier", texts=texts,
                                  labels=["x", "y"], seed=1))


def _head(path):
    from safetensors.torch import load_file

    weights = load_file(str(path / "model.safetensors"))
    return weights["classifier.weight"]


def test_new_head_over_the_labels_the_same_for_the_same_seed(checkpoint, tmp_path):
    from attribution_worker.engine import AttributionConfig, AttributionEngine
    from attribution_worker.pretrained import build_classifier_teacher

    labels = ["entailment", "neutral", "contradiction"]
    a = build_classifier_teacher(tmp_path / "a", checkpoint, labels, seed=0)
    torch.manual_seed(12345)  # whatever the global generator holds, seed=0 gives the same head ...
    state = torch.random.get_rng_state()
    b = build_classifier_teacher(tmp_path / "b", checkpoint, labels, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # ... and leaves the generator as it was
    c = build_classifier_teacher(tmp_path / "c", checkpoint, labels, seed=1)
    assert _head(a).shape == (3, _head(a).shape[1])
    assert torch.equal(_head(a), _head(b)) and not torch.equal(_head(a), _head(c))

    engine = AttributionEngine(AttributionConfig(teacher=str(a), method="saliency", k=2, device="cpu",
                                                 faithfulness=False))
    row = engine.attribute([{"example_id": "e0", "input": "a man sleeps", "target": "neutral"}])[0]
    assert row["teacher_output"] in labels and row["answer_choices"] == labels
    assert abs(sum(row["answer_probs"]) - 1) < 1e-5


def test_a_head_of_the_same_shape_is_kept(checkpoint, tmp_path):
    from attribution_worker.pretrained import build_classifier_teacher

    again = build_classifier_teacher(tmp_path / "same", checkpoint, ["p", "q"], seed=7)
    assert torch.equal(_head(again), _head(Path(checkpoint)))


def test_multiple_choice_head_without_labels(checkpoint, tmp_path):
    from transformers import AutoConfig

    from attribution_worker.pretrained import build_classifier_teacher

    path = build_classifier_teacher(tmp_path / "mc", checkpoint, None, seed=0)
    assert AutoConfig.from_pretrained(str(path)).architectures == ["BertForMultipleChoice"]


@pytest.mark.parametrize("labels", [["only"], ["a", "a"], []])
def test_bad_label_sets_are_refused_before_anything_is_written(checkpoint, tmp_path, labels):
    from attribution_worker.pretrained import build_classifier_teacher

    with pytest.raises(ValueError, match="two or more distinct label names"):
        build_classifier_teacher(tmp_path / "t", checkpoint, labels)
    assert not (tmp_path / "t").exists()
