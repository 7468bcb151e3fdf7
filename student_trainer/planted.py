"""The planted-cue task: a dataset where the right rationale is known (benchmarks/distill_quality.py --task planted).

    rows = planted_examples(PlantedTask(), 100, random.Random(0), "train")   # {example_id, input, target, cue, ...}

Inputs are `words` words drawn from a filler vocabulary (w0 ... w{fillers-1}); one of them is a cue word
cue<c>x<j>; each class c owns `cues` cue words and the label is the class of the cue. A teacher that learns
the task should put the cue in its top-1 rationale, so a student given that rationale has a known lever.
"""
from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class PlantedTask:
    classes: int = 2
    """Number of classes."""
    cues: int = 10
    """Cue words per class."""
    words: int = 30
    """Words per input (one of them the cue)."""
    fillers: int = 300
    """Filler vocabulary size."""

    @property
    def labels(self) -> list[str]:
        return [f"class{c}" for c in range(self.classes)]

    @property
    def vocabulary(self) -> list[str]:
        return ([f"w{i}" for i in range(self.fillers)]
                + [f"cue{c}x{j}" for c in range(self.classes) for j in range(self.cues)])


def planted_examples(task: PlantedTask, n: int, rng: random.Random, split: str) -> list[dict]:
    """n dataset rows {example_id, input, target, choices, split, cue}."""
    out = []
    for i in range(n):
        c = rng.randrange(task.classes)
        cue = f"cue{c}x{rng.randrange(task.cues)}"
        words = [f"w{rng.randrange(task.fillers)}" for _ in range(task.words - 1)]
        words.insert(rng.randrange(task.words), cue)
        out.append({"example_id": f"{split}-{i}", "input": " ".join(words), "target": task.labels[c],
                    "choices": None, "split": split, "cue": cue})
    return out
