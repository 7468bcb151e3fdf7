"""Rationale rows -> multi-task examples (Distilling step-by-step, Hsieh et al. 2023).

    data = load_data(catalog, cfg)          # cfg: TrainConfig
    data.train[0].predict_input             # "predict: <input_text>"
    data.train[0].label                     # gold target, or the teacher's answer (--labels teacher)
    data.train[0].explain_input             # "explain: <input_text>"
    data.train[0].rationale                 # rationale_text ("" when the row has none)
    data.counts                             # {"rows_read", "error_rows", "duplicates", "no_target", ...}

Rows are chosen by dataset (every committed shard whose job belongs to it), optionally one job,
optionally a SQL boolean filter over the rationale columns. The shards are streamed from Parquet in
record batches by an in-memory DuckDB connection that may read only the chosen shard files
(`allowed_directories` + `enable_external_access=false`, as in storage.sql), so a filter cannot
read anything else. Rows with `error` set are skipped and counted. When the same example was
attributed twice (two jobs), the newest row wins (counted as `duplicates`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import duckdb

from storage import Catalog
from storage.sql import SQLRefused, check_statement, lock_down

from .config import TrainConfig

COLUMNS = ("example_id", "split", "job_id", "input_text", "target_text", "teacher_output", "teacher_correct",
           "rationale_text", "error", "created_at")
VAL_SPLITS = ("valid", "validation", "val", "dev")
PREDICT, EXPLAIN = "predict: ", "explain: "


@dataclass(frozen=True)
class Example:
    """One rationale row as a pair of seq2seq tasks; `gold` is always the dataset target (for scoring)."""

    example_id: str
    split: str
    input: str
    label: str
    gold: str
    rationale: str
    teacher_output: str | None = None

    @property
    def predict_input(self) -> str:
        return PREDICT + self.input

    @property
    def explain_input(self) -> str:
        return EXPLAIN + self.input


@dataclass
class Data:
    train: list[Example]
    val: list[Example]
    test: list[Example]
    counts: dict = field(default_factory=dict)
    shard_paths: list[str] = field(default_factory=list)
    val_source: str = ""

    def texts(self) -> list[str]:
        """Every text a word-level tokenizer must know (inputs with prefixes, labels, rationales)."""
        out = [PREDICT, EXPLAIN]
        for ex in self.train + self.val + self.test:
            out += [ex.input, ex.label, ex.gold, ex.rationale]
        return out


def _hash01(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / float(16 ** 12)


def dataset_shards(catalog: Catalog, dataset: str, job: str | None = None) -> list[str]:
    """Store-relative paths of the committed shards of `dataset` (optionally of one job), sorted."""
    sql = ('SELECT s.path FROM shards s JOIN jobs j ON s.job_id = j.job_id WHERE j.dataset = ?')
    params: list = [dataset]
    if job:
        sql += " AND s.job_id = ?"
        params.append(job)
    return [r["path"] for r in catalog.query(sql + ' ORDER BY s.job_id, s."index"', params)]


def stream_rows(catalog: Catalog, paths: list[str], where: str | None = None, batch_rows: int = 4096):
    """Yield dicts (COLUMNS) from the shard files, batch by batch; `where` filters in DuckDB."""
    if not paths:
        return
    files = [str(catalog.store.absolute(p)) for p in paths]
    con = duckdb.connect(":memory:")
    try:
        lock_down(con, catalog.store.root)  # the same lock-down as the SQL sandbox
        file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        sql = f"SELECT {', '.join(COLUMNS)} FROM read_parquet({file_list}, union_by_name=true)"
        if where:
            try:
                check_statement(f"SELECT 1 FROM t WHERE {where}")  # one SELECT, allowed functions only
            except SQLRefused as exc:
                raise ValueError(f"--where {where!r} refused: {exc}") from None
            sql += f" WHERE ({where})"
        try:
            reader = con.sql(sql).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            raise ValueError(f"--where {where!r} failed: {str(exc).splitlines()[0]}; columns: {', '.join(COLUMNS)}") from exc
        for batch in reader:
            yield from batch.to_pylist()
    finally:
        con.close()


def load_data(catalog: Catalog, cfg: TrainConfig) -> Data:
    """Select, clean and split the rows of `cfg.dataset` into train / val / test Examples."""
    paths = dataset_shards(catalog, cfg.dataset, cfg.job)
    if not paths:
        where = f" and job {cfg.job!r}" if cfg.job else ""
        raise ValueError(f"--dataset {cfg.dataset!r}{where}: no committed rationale shards; "
                         "run `salient attribute` first or check `salient jobs ls`")
    counts = {"rows_read": 0, "error_rows": 0, "duplicates": 0, "no_target": 0, "no_rationale": 0, "other_split": 0}
    newest: dict[tuple[str, str], dict] = {}
    for row in stream_rows(catalog, paths, cfg.where):
        counts["rows_read"] += 1
        if row["error"] is not None:
            counts["error_rows"] += 1
            continue
        key = (row["split"], row["example_id"])
        if key in newest:
            counts["duplicates"] += 1
            if (row["created_at"], row["job_id"]) <= (newest[key]["created_at"], newest[key]["job_id"]):
                continue
        newest[key] = row

    def example(row: dict, train: bool) -> Example | None:
        gold = row["target_text"]
        label = row["teacher_output"] if (train and cfg.labels == "teacher") else gold
        if gold is None or label is None or not str(label).strip():
            counts["no_target"] += 1
            return None
        rationale = (row["rationale_text"] or "").strip()
        if train and not rationale:
            counts["no_rationale"] += 1
        return Example(row["example_id"], row["split"], row["input_text"], str(label).strip(), str(gold).strip(),
                       rationale, row["teacher_output"])

    by_split: dict[str, list[dict]] = {}
    for (split, _), row in sorted(newest.items()):
        by_split.setdefault(split, []).append(row)
    val_split = cfg.val_split or next((s for s in VAL_SPLITS if s in by_split), None)
    train_rows = by_split.get(cfg.train_split, [])
    if not train_rows:
        raise ValueError(f"--train-split {cfg.train_split!r}: no usable rows; splits present: {sorted(by_split) or 'none'}")
    if val_split is None:
        val_rows = [r for r in train_rows if _hash01("val:" + r["example_id"]) < cfg.val_fraction]
        train_rows = [r for r in train_rows if _hash01("val:" + r["example_id"]) >= cfg.val_fraction]
        val_source = f"{cfg.val_fraction:.0%} of {cfg.train_split} (hash of example_id)"
    else:
        val_rows = by_split.get(val_split, [])
        val_source = val_split
        if not val_rows:
            raise ValueError(f"--val-split {val_split!r}: no rows; splits present: {sorted(by_split)}")
    test_rows = by_split.get(cfg.test_split, []) if cfg.test_split else []
    used = {cfg.train_split, val_split, cfg.test_split}
    counts["other_split"] = sum(len(v) for k, v in by_split.items() if k not in used)

    train_rows.sort(key=lambda r: _hash01("order:" + r["example_id"]))
    if cfg.max_train_rows is not None:
        train_rows = train_rows[: cfg.max_train_rows]
    train = [e for e in (example(r, True) for r in train_rows) if e is not None]
    val = [e for e in (example(r, False) for r in val_rows) if e is not None]
    test = [e for e in (example(r, False) for r in test_rows) if e is not None]
    if not train:
        raise ValueError(f"--dataset {cfg.dataset!r}: every training row lacks a label (--labels {cfg.labels})")
    if not val:
        raise ValueError(f"--dataset {cfg.dataset!r}: no validation rows; pass --val-split or a larger --val-fraction")
    counts.update(train=len(train), val=len(val), test=len(test))
    return Data(train, val, test, counts, paths, val_source)
