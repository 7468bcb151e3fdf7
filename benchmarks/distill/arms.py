"""The quality benchmark's student arms: which trainer settings each arm is, training them on identical rows and
seeds with the paired difference against plain fine-tuning, and the tables it prints (results, where the time went).
"""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from student_trainer import TrainConfig, run_training
from student_trainer.compare import minilm_checkpoint


ARMS = ("plain", "rationale", "kd", "rationale_kd", "content_kd", "fraction_kd", "soft_kd", "teacher_correct",
        "correct_rationales", "comprehensive", "palm", "palm_tag", "palm_tag_kd", "answer_tag_kd", "gold_tag_kd")
PALM_TAG_ARMS = ("palm_tag", "palm_tag_kd")
ANSWER_TAG_ARMS = {"answer_tag_kd": "anstag", "gold_tag_kd": "goldtag"}  # arm -> dataset suffix
KD_ARMS = ("kd", "rationale_kd", "content_kd", "fraction_kd", "soft_kd", "palm_tag_kd",
           *ANSWER_TAG_ARMS)  # the arms that read the teacher's distribution


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


def machine() -> dict:
    """Where a run's numbers come from: the CPU (and GPU, if any), its cores, torch and the CPU kernels it picked, and
    the threads the run uses. Two runs of one command agree to the digit on one machine but not across machines (a
    teacher's test accuracy moved 0.734 -> 0.732 between two CPUs), and a time is only comparable on one, so every
    run says where it ran: under its time table, in --json's rows, and in each student run's stored config."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # usable here
    return {"cpu": cpu, "cores": cores, "torch": torch.__version__,
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def machine_line(m: dict) -> str:
    """machine(), as the line printed under the time table."""
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return (f"machine: {m['cpu']}, {m['cores']} cores{gpu}, torch {m['torch']} ({m['cpu_kernels']} kernels), "
            f"{m['threads']} threads")


TEACHER_STAGE = "teacher (built, fine-tuned, saved)"


def teacher_seconds(args, name: str) -> float | None:
    """The wall seconds this run spent building, fine-tuning and saving the dataset's teacher (None: reused)."""
    spent = [t["seconds"] for t in args.timings if t["dataset"] == name and t["stage"] == TEACHER_STAGE]
    return spent[-1] if spent else None


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


def train_arms(cat, name: str, args, *, palm: bool, log, student: str = "extractive",
               scorer: str = "auto") -> list[dict]:
    """The real-data arms on identical rows and seeds; each run keeps its best validation checkpoint.

    student: the kind every arm trains (the `palm` arm is always encdec): extractive, or encdec, the generative
    student (`--student encdec`; SVAMP equations always). scorer: the trainer's (`auto` scores datasets named
    svamp* by equation value; templates: exact)."""
    ckpt = minilm_checkpoint() if args.checkpoint == "minilm" else args.checkpoint
    common = dict(student=student, scorer=scorer, checkpoint=ckpt, max_target_tokens=args.max_target_tokens,
                  student_layers=args.student_layers, seeds=args.seeds, steps=args.steps, batch_size=args.batch_size,
                  lr=args.lr, eval_every=args.eval_every, checkpoint_every=max(args.steps, 1),
                  max_input_tokens=args.max_input_tokens, progress=False,
                  choice_scoring=args.choice_scoring if student == "extractive" else "pairs",
                  threads=args.threads, warmup_steps=args.warmup_steps, kd_temperature=args.kd_temperature,
                  extra={"benchmark": "distill_quality", "args": stored_args(args)})
    a, w = args.label_weight, args.kd_weight
    plans = {  # arm -> (TrainConfig overrides, row label)
        "rationale": (dict(label_weight=a, compare_baseline="plain" in args.arms),
                      f"{student}, teacher rationales (a={a})"),
        "kd": (dict(label_weight=1.0, kd_weight=w),
               f"KD on the teacher's distribution (w={w}, tau={args.kd_temperature})"),
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
        if args.student == "encdec" and "encdec" not in label:  # --student encdec: every row names the kind
            label = f"encdec: {label}"
        rows.append({"dataset": name, "student": label, "test_mean": test["mean"], "test_std": test["std"],
                     "per_seed": test["values"], "val_mean": v["val_accuracy"]["mean"], "paired": paired,
                     "best_steps": [r["best_step"] for r in v["per_seed"]], "seconds": seconds.get(arm)})
    teacher = next(iter(metrics.values()))["teacher"] if metrics else {}
    rows.append({"dataset": name, "student": "teacher", "test_mean": teacher.get("test_accuracy"), "test_std": None,
                 "per_seed": [], "val_mean": teacher.get("val_accuracy"), "paired": None, "best_steps": [],
                 "seconds": teacher_seconds(args, name)})
    return rows


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
