"""The quality benchmark's teachers: built or started from an earlier run's, each with a record of the rows that
fine-tuned it (so a later run that reuses it can refuse one that saw its validation or test rows), fold teachers
for `--teacher-folds`, and the attribution engines that answer each split.
"""
from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from student_trainer.compare import minilm_checkpoint


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
    out-of-sample distribution to distil (on ANLI-R1 it was the one that helped; docs/quality-runs.md, "ANLI-R1
    with an e-SNLI teacher fine-tuned on ANLI")."""
    return args.teacher_sees_student if args.teacher_sees_student is not None else name == "svamp"


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


def build_minilm_encdec(path: Path, layers: int | None, seed: int = 0) -> Path:
    """The SVAMP teacher before fine-tuning: BERT2BERT warm-started from two copies of all-MiniLM-L6-v2, its new
    cross-attention drawn with `seed`."""
    from transformers import AutoTokenizer

    from student_trainer.students import warm_start_encdec

    src = minilm_checkpoint()
    tok = AutoTokenizer.from_pretrained(src)
    warm_start_encdec(src, src, tok, encoder_layers=layers, decoder_layers=layers, seed=seed).save_pretrained(path)
    tok.save_pretrained(path)
    return path
