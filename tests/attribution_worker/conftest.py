"""Tiny teachers (built from configs, random weights, no downloads) shared by the attribution tests."""
from __future__ import annotations

import pytest

WORDS = "the a cat dog sat ran on under mat box red blue big small quickly slowly near far tree house".split()
KIND_LABELS = {"seq2seq": None, "causal": None, "classifier": ["entailment", "neutral", "contradiction"]}


def sample_examples(n: int = 6, seed: int = 0) -> list[dict]:
    """Rows of varied length (so batches pad), some with choices, some with punctuation (multi-token words)."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(3 + (i * 5) % 11)]
        if i % 3 == 1:
            words[0] = "(" + words[0] + ")."
        row = {"example_id": f"ex{i}", "input": " ".join(words), "target": rng.choice(["cat", "dog"]),
               "choices": None, "split": "test"}
        if i % 2:
            row["choices"] = ["cat", "dog", "tree"]
        rows.append(row)
    return rows


@pytest.fixture(scope="session")
def make_examples():
    """sample_examples(n, seed) as a fixture (test modules here are not a package)."""
    return sample_examples


@pytest.fixture(scope="session")
def tiny_teachers(tmp_path_factory) -> dict:
    """{kind: path} for seq2seq (T5), causal (GPT-2) and classifier (BERT) tiny teachers."""
    from attribution_worker.tiny import build_tiny_teacher

    root = tmp_path_factory.mktemp("teachers")
    texts = [r["input"] for r in sample_examples(20)] + [" ".join(WORDS), "( ) . Answer entailment neutral contradiction"]
    return {kind: str(build_tiny_teacher(root / kind, kind=kind, texts=texts, labels=labels, seed=1))
            for kind, labels in KIND_LABELS.items()}

