"""Helpers for the trainer tests: toy rationale rows written through the real storage path, a tiny TrainConfig."""
from __future__ import annotations

import random

import torch

torch.set_num_threads(1)  # the machine is shared; tiny students do not gain from more

LABELS = ("yes", "no")
CUES = {"yes": ["good", "great", "fine"], "no": ["bad", "awful", "poor"]}
FILL = "the a of to in is on at by it we he she they this that was were be".split()


def toy_rows(n: int, split: str, *, seed: int = 0, error_every: int = 0, prefix: str = "") -> list[dict]:
    """Rows keyed by RATIONALE_COLUMNS (minus provenance): a cue word decides the label."""
    rng = random.Random(f"{seed}-{split}-{prefix}")
    rows = []
    for i in range(n):
        label = rng.choice(LABELS)
        cue = rng.choice(CUES[label])
        words = [rng.choice(FILL) for _ in range(6)]
        words.insert(rng.randrange(7), cue)
        teacher = label if rng.random() > 0.1 else ("no" if label == "yes" else "yes")
        rows.append(dict(
            example_id=f"{prefix}{split}-{i}", input_text=" ".join(words), target_text=label, teacher_model="toy",
            method="saliency", teacher_output=teacher, teacher_correct=teacher == label, tokens=words,
            rationale=[cue], rationale_text=cue,
            error=("input too long" if error_every and i % error_every == 0 else None)))
    return rows


def add_job(catalog, dataset: str, job_id: str, rows_by_split: dict[str, list[dict]]) -> None:
    """One shard per split (shard index = position), committed through storage.write_shard."""
    from storage import rationale_table, write_shard

    total = sum(len(r) for r in rows_by_split.values())
    catalog.create_job(job_id, dataset=dataset, split=None, spec={"test": True}, total_rows=total,
                       shards_total=len(rows_by_split))
    for index, (split, rows) in enumerate(rows_by_split.items()):
        table = rationale_table(rows, dataset=dataset, split=split, job_id=job_id, shard_index=index)
        write_shard(catalog, table, dataset=dataset, job_id=job_id, index=index)



def tiny_cfg(**overrides):
    from student_trainer import TrainConfig

    base = dict(dataset="toy", student="tiny", steps=12, batch_size=8, lr=3e-3, eval_every=6, checkpoint_every=4,
                eval_batch_size=32, max_target_tokens=4, progress=False, seeds=[0])
    base.update(overrides)
    return TrainConfig(**base)
