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


def tiny_bert(path, *, words=(), layers: int = 2, seed: int = 0):
    """A tiny BERT checkpoint (config + WordPiece vocab, random weights) saved with save_pretrained: a stand-in
    for a hub id (the pretrained students load it through the same from_pretrained path)."""
    from pathlib import Path

    from transformers import BertConfig, BertModel, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "predict", "explain", ":"]
    vocab += sorted({w for w in list(words) + FILL + list(LABELS) + sum(CUES.values(), []) if w not in vocab})
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=64))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def add_job_v3(catalog, dataset: str, job_id: str, rows_by_split: dict[str, list[dict]]) -> None:
    """Like add_job, but keeps schema v3's answer_choices / answer_probs (written beside the v2 columns when the
    store's schema predates them), so the KD path is tested against the column names the engine writes."""
    import pyarrow as pa

    from storage import rationale_table, write_shard
    from storage.catalog import shard_metadata
    from storage.parquet_io import write_parquet_atomic
    from storage.schemas import RATIONALE_SCHEMA

    total = sum(len(r) for r in rows_by_split.values())
    catalog.create_job(job_id, dataset=dataset, split=None, spec={"test": True}, total_rows=total,
                       shards_total=len(rows_by_split))
    for index, (split, rows) in enumerate(rows_by_split.items()):
        table = rationale_table(rows, dataset=dataset, split=split, job_id=job_id, shard_index=index)
        if "answer_probs" in RATIONALE_SCHEMA.names:
            write_shard(catalog, table, dataset=dataset, job_id=job_id, index=index)
            continue
        table = table.append_column("answer_choices", pa.array([r.get("answer_choices") for r in rows],
                                                               pa.list_(pa.string())))
        table = table.append_column("answer_probs", pa.array([r.get("answer_probs") for r in rows],
                                                             pa.list_(pa.float32())))
        path = catalog.store.shard_path(dataset, job_id, index)
        size = write_parquet_atomic(table, path, metadata=shard_metadata(job_id=job_id, shard_index=index,
                                                                         rows=len(rows), error_rows=0, dataset=dataset))
        catalog.commit_shard(job_id, index=index, path=catalog.store.relative(path), rows=len(rows), error_rows=0,
                             bytes_=size)


def word_spans(text: str, words: list[str]) -> list[dict]:
    """The engine's `spans` of whitespace words in `text`, in order."""
    spans, pos = [], 0
    for w in words:
        start = text.index(w, pos)
        spans.append({"start": start, "end": start + len(w)})
        pos = start + len(w)
    return spans


def with_spans_and_probs(rows: list[dict]) -> list[dict]:
    """toy_rows plus the engine's spans/scores for each word and a teacher distribution over LABELS."""
    out = []
    for r in rows:
        spans = word_spans(r["input_text"], r["tokens"])
        scores = [1.0 if w in r["rationale"] else 0.0 for w in r["tokens"]]
        p = 0.8 if r["teacher_output"] == "yes" else 0.2
        out.append(dict(r, spans=spans, scores=scores, answer_choices=list(LABELS), answer_probs=[p, 1 - p]))
    return out
