"""The teacher's attributed rows into the store: one job and shard per split (the trainer's real input), and the
filtered and derived datasets each arm trains on (`write_datasets`).
"""
from __future__ import annotations

import statistics
import time

from storage import Catalog, rationale_table, write_shard
from student_trainer.data import common_words

from benchmarks.distill.arms import ANSWER_TAG_ARMS, PALM_TAG_ARMS
from benchmarks.distill.rationales import palm_projection, with_answer_units, with_quantity_units, with_rationale


def attribute(engine, examples: list[dict], log) -> list[dict]:
    t = time.perf_counter()
    rows = []
    for i in range(0, len(examples), 256):
        rows += engine.attribute(examples[i:i + 256])
    errors = sum(r["error"] is not None for r in rows)
    log(f"  attributed {len(rows)} rows in {time.perf_counter() - t:.0f} s ({errors} errors)")
    return rows


def write_rows(cat: Catalog, dataset: str, rows_by_split: dict[str, list[dict]], job: str) -> None:
    """One job per split, one shard each, through storage.write_shard (the trainer's real input)."""
    for split, rows in rows_by_split.items():
        job_id = f"{dataset}-{job}-{split}"
        cat.create_job(job_id, dataset=dataset, split=split, spec={"benchmark": "distill_quality"},
                       total_rows=len(rows), shards_total=1)
        write_shard(cat, rationale_table(rows, dataset=dataset, split=split, job_id=job_id, shard_index=0),
                    dataset=dataset, job_id=job_id, index=0)


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
