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
import math
from collections import Counter
from dataclasses import dataclass, field

import duckdb

from storage import Catalog
from storage.sql import SQLRefused, check_statement, lock_down
from storage.views import parquet_scan

from .config import TrainConfig

COLUMNS = ("example_id", "split", "job_id", "input_text", "target_text", "teacher_output", "teacher_correct",
           "rationale_text", "error", "created_at", "rationale", "tokens", "spans", "scores")
OPTIONAL_COLUMNS = ("answer_choices", "answer_probs")
"""Rationale schema v3 (the teacher's distribution over the label set / answer choices, for --kd-weight);
read as NULL from older shards."""
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
    rationale_spans: tuple = ()
    """(start, end) character spans in `input` of the rationale words (from the shard's tokens/spans/scores)."""
    answer_choices: tuple = ()
    """The labels / choices the teacher's distribution is over (schema v3 `answer_choices`); () when absent."""
    answer_probs: tuple = ()
    """The teacher's probabilities over `answer_choices` (schema v3 `answer_probs`); () when absent."""
    tag_weights: tuple = ()
    """(start, end, weight) per word of `input`, the soft tagging target (--rationale-target soft, training rows
    only; see soft_rationale); () otherwise."""

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
        """The texts a word-level tokenizer is built from: the training rows only (inputs, labels, rationales).

        Validation and test words are left out on purpose: a vocabulary that knows them leaks the
        held-out data into the student (their words would get embeddings no training row taught).
        """
        out = [PREDICT, EXPLAIN]
        for ex in self.train:
            out += [ex.input, ex.label, ex.gold, ex.rationale]
        return out


def _hash01(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / float(16 ** 12)


def pool_split(rows: list[dict], sizes: list[int], name: str, flags: str) -> list[list[dict]]:
    """Disjoint consecutive pools of `rows`, ordered by sha256("pool:" + example_id): the same pools in every run.

    How a dataset without a training split (the shared e-SNLI and ANLI) gives a teacher, a student and a
    validation set that never share a row: `teacher, student, val = pool_split(valid_rows, [3000, 250, 100], "esnli", "--teacher-rows / ...")`.
    `flags` names the caller's options for the pool sizes in the error when the rows do not fill the pools.
    """
    ordered = sorted(rows, key=lambda r: hashlib.sha256(f"pool:{r['example_id']}".encode()).hexdigest())
    if len(ordered) < sum(sizes):
        raise ValueError(f"{name}: {len(ordered)} rows < {' + '.join(map(str, sizes))} for the teacher-train / "
                         f"student-train / validation pools; ask for fewer rows ({flags})")
    out, at = [], 0
    for n in sizes:
        out.append(ordered[at:at + n])
        at += n
    return out


def id_order_slice(rows: list[dict], offset: int, n: int, name: str) -> list[dict]:
    """Rows `offset` .. `offset + n` in example-id order (test rows: a later run can score rows an earlier one
    never read, `--test-offset`)."""
    if not rows:  # else the offset check below would blame an offset of 0
        raise ValueError(f"{name}: the test split has no rows; ingest the dataset with its test file "
                         "(`salient datasets add NAME DIR --format FORMAT`, `salient datasets ls` shows the splits)")
    if offset >= len(rows):
        raise ValueError(f"{name}: --test-offset {offset} is past the test split's {len(rows)} rows; pass an offset "
                         f"below {len(rows)}")
    return sorted(rows, key=lambda r: r["example_id"])[offset:offset + n]


def dataset_shards(catalog: Catalog, dataset: str, job: str | None = None) -> list[str]:
    """Store-relative paths of the committed shards of `dataset` (optionally of one job), sorted."""
    sql = ('SELECT s.path FROM shards s JOIN jobs j ON s.job_id = j.job_id WHERE j.dataset = ?')
    params: list = [dataset]
    if job:
        sql += " AND s.job_id = ?"
        params.append(job)
    return [r["path"] for r in catalog.query(sql + ' ORDER BY s.job_id, s."index"', params)]


def _by_score(scores: list) -> list[int]:
    """Unit indices by score, highest first, ties to the earlier unit (as attribution_worker.units.top_k), NaN last."""
    return sorted(range(len(scores)), key=lambda i: (-(scores[i] if scores[i] == scores[i] else -1e30), i))


def _rationale_units(row: dict) -> tuple[list[int], list[int] | None]:
    """Unit indices of the row's rationale words, in input order, and, where they are the top-k of its scores,
    every unit by score (highest first, `_by_score`), else None.

    The engine picks the rationale as the top-k units by score (attribution_worker.units.top_k: ties
    to the earlier unit) and stores the units' `tokens`/`spans`/`scores`; recomputing top-k with
    k = len(rationale) recovers exactly which occurrence of a repeated word it took. Rows whose
    rationale is not that top-k (e.g. replaced by PaLM text) fall back to the first in-order match
    of each word among the units; words that are not units get no index.
    """
    words, tokens, spans = row.get("rationale") or [], row.get("tokens") or [], row.get("spans") or []
    if not words or len(tokens) != len(spans):
        return [], None
    order = _by_score(row.get("scores") or [])
    if len(order) == len(tokens):
        picked = sorted(order[:len(words)])
        if [tokens[i] for i in picked] == list(words):
            return picked, order
    out, j = [], 0
    for w in words:
        k = next((i for i in range(j, len(tokens)) if tokens[i] == w), None)
        if k is None:
            continue
        out.append(k)
        j = k + 1
    return out, None


def _spans_of(row: dict, units: list[int]) -> tuple:
    return tuple((row["spans"][i]["start"], row["spans"][i]["end"]) for i in units)


def rationale_spans(row: dict) -> tuple:
    """Character spans (start, end) in input_text of the row's rationale words, in input order (see _rationale_units)."""
    return _spans_of(row, _rationale_units(row)[0])


def norm_word(word: str) -> str:
    """A word's normalised form: lower case, letters and digits only ("Dog," -> "dog"; "." -> "")."""
    return "".join(c for c in word.lower() if c.isalnum())


def common_words(inputs: list[list[str]], max_df: float) -> set[str]:
    """Normalised words in more than `max_df` of `inputs` (each a row's units): the function words, the, a, is, ...

    Rows without units do not count."""
    inputs = [words for words in inputs if words]
    df = Counter(w for words in inputs for w in {norm_word(t) for t in words})
    return {w for w, n in df.items() if w and n > max_df * max(1, len(inputs))}


def repicked_rationale(row: dict, common: set[str] | None = None,
                       fraction: float | None = None) -> tuple[list[str], tuple, str]:
    """The row's rationale picked again: (words, spans in input order, how).

    common (--rationale-max-df): those words and bare punctuation are left out. fraction (--rationale-fraction): the
    rationale is ceil(fraction * n) words, n the units with a finite score (the input's words the teacher scored),
    at least 1, instead of as many as stored. A saliency rationale (the top-k units by score) is picked again from
    the units with a finite score that are not left out, highest first, so the next-highest-scoring words take the
    left-out words' places (how = "repicked"). Any other rationale, or one whose row has no finite score, only
    loses the left-out words and otherwise stays as stored (how = "filtered"); a row with none keeps none
    (how = "none").
    """
    words, tokens = list(row.get("rationale") or []), row.get("tokens") or []
    if not words:
        return [], (), "none"
    skip = set() if common is None else common | {""}
    units, ranked = _rationale_units(row)
    scored = [i for i in ranked if math.isfinite(row["scores"][i])] if ranked else []
    if scored:  # a top-k rationale; a row with no finite score has nothing to pick from: it keeps its words, as below
        k = len(words) if fraction is None else max(1, math.ceil(fraction * len(scored) - 1e-9))
        units = sorted([i for i in scored if norm_word(tokens[i]) not in skip][:k])
        return [tokens[i] for i in units], _spans_of(row, units), "repicked"
    kept = [i for i in units if norm_word(tokens[i]) not in skip]
    return [w for w in words if norm_word(w) not in skip], _spans_of(row, kept), "filtered"


def soft_rationale(row: dict, common: set[str] | None = None) -> tuple:
    """((start, end, weight), ...) per unit (word) of the row, in input order: its saliency score over the row's
    highest, so the teacher's top word weighs 1 and the other words keep their order.

    Units with a score that is not finite, and (when `common` is given, as --rationale-max-df does) common words
    and bare punctuation weigh 0. () when the row has no rationale (a dataset that left it out, e.g. a wrong
    teacher's row, keeps it out), no score per unit, or no positive weight: nothing to tag."""
    tokens, spans, scores = row.get("tokens") or [], row.get("spans") or [], row.get("scores") or []
    if not row.get("rationale") or not tokens or not len(tokens) == len(spans) == len(scores):
        return ()
    skip = None if common is None else common | {""}
    kept = [max(0.0, float(x)) if math.isfinite(x) and (skip is None or norm_word(t) not in skip) else 0.0
            for t, x in zip(tokens, scores)]
    top = max(kept)
    if not top > 0:
        return ()
    return tuple((sp["start"], sp["end"], w / top) for sp, w in zip(spans, kept))


class _Source:
    """The chosen shards as one DuckDB view `src`, on a connection that may read only those files."""

    def __init__(self, catalog: Catalog, paths: list[str], where: str | None):
        self.con = duckdb.connect(":memory:")
        # read_parquet over the local shard files, or (an s3:// store) a pyarrow dataset registered on the connection
        scan = parquet_scan([catalog.store.absolute(p) for p in paths], self.con, union_by_name=True)
        lock_down(self.con, catalog.store.root)  # the same lock-down as the SQL sandbox
        present = {r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        cols = [c if c in present else f"NULL AS {c}" for c in COLUMNS + OPTIONAL_COLUMNS]
        sql = f"SELECT {', '.join(cols)} FROM {scan}"
        if where:
            try:
                check_statement(f"SELECT 1 FROM t WHERE {where}")  # one SELECT, allowed functions only
            except SQLRefused as exc:
                raise ValueError(f"--where {where!r} refused: {exc}") from None
            sql += f" WHERE ({where})"
        try:
            self.con.execute(f"CREATE TEMP VIEW src AS {sql}")
            self.con.execute("SELECT 1 FROM src LIMIT 1").fetchall()
        except duckdb.Error as exc:
            self.con.close()
            raise ValueError(f"--where {where!r} failed: {str(exc).splitlines()[0]}; columns: {', '.join(COLUMNS)}") from exc
        # newest row per (split, example_id) among rows without an error (two jobs may attribute one example)
        self.con.execute("""CREATE TEMP VIEW clean AS SELECT * FROM src WHERE error IS NULL
            QUALIFY row_number() OVER (PARTITION BY split, example_id ORDER BY created_at DESC, job_id DESC) = 1""")

    def stream(self, sql: str, params: list, batch_rows: int = 1024):
        for batch in self.con.sql(sql, params=params).to_arrow_reader(batch_rows):
            yield from batch.to_pylist()

    def close(self):
        self.con.close()


def stream_rows(catalog: Catalog, paths: list[str], where: str | None = None, batch_rows: int = 4096):
    """Yield dicts (COLUMNS + OPTIONAL_COLUMNS) from the shard files, batch by batch; `where` filters in DuckDB."""
    if not paths:
        return
    src = _Source(catalog, paths, where)
    try:
        yield from src.stream("SELECT * FROM src", [], batch_rows)
    finally:
        src.close()


def load_data(catalog: Catalog, cfg: TrainConfig) -> Data:
    """Select, clean and split the rows of `cfg.dataset` into train / val / test Examples.

    Rows stream from DuckDB batch by batch; deduplication (newest row per split and example wins)
    and split selection run in DuckDB, the training rows come ordered by sha256("order:" + id) and
    stop at --max-train-rows, so Python holds only the rows it turns into Examples
    (`counts["rows_fetched"]` says how many it fetched).
    """
    paths = dataset_shards(catalog, cfg.dataset, cfg.job)
    if not paths:
        where = f" and job {cfg.job!r}" if cfg.job else ""
        raise ValueError(f"--dataset {cfg.dataset!r}{where}: no committed rationale shards; "
                         "run `salient attribute` first or check `salient jobs ls`")
    src = _Source(catalog, paths, cfg.where)
    try:
        return _load(src, cfg, paths)
    finally:
        src.close()


def _load(src: _Source, cfg: TrainConfig, paths: list[str]) -> Data:
    per_split = {s: (n, err, dup) for s, n, err, dup in src.con.execute(
        "SELECT split, count(*), count(*) FILTER (WHERE error IS NOT NULL), "
        "count(*) FILTER (WHERE error IS NULL) - count(DISTINCT example_id) FILTER (WHERE error IS NULL) "
        "FROM src GROUP BY split").fetchall()}
    clean = dict(src.con.execute("SELECT split, count(*) FROM clean GROUP BY split").fetchall())
    counts = {"rows_read": sum(v[0] for v in per_split.values()), "error_rows": sum(v[1] for v in per_split.values()),
              "duplicates": sum(v[2] for v in per_split.values()), "no_target": 0, "no_rationale": 0,
              "other_split": 0, "rows_fetched": 0}

    def example(row: dict, train: bool) -> Example | None:
        gold = row["target_text"]
        label = row["teacher_output"] if (train and cfg.labels == "teacher") else gold
        if gold is None or label is None or not str(label).strip():
            counts["no_target"] += 1
            return None
        rationale, spans, how = (row["rationale_text"] or "").strip(), None, "none"
        if train and repick:  # --rationale-max-df / --rationale-fraction: the training target picked again
            words, spans, how = repicked_rationale(row, common, cfg.rationale_fraction)
            rationale = " ".join(words)
            counts[f"rationale_{how}"] += 1
        if how != "none" and not rationale:
            counts["rationale_all_common"] += 1
        elif train and not rationale:
            counts["no_rationale"] += 1
        return Example(row["example_id"], row["split"], row["input_text"], str(label).strip(), str(gold).strip(),
                       rationale, row["teacher_output"],
                       rationale_spans=rationale_spans(row) if spans is None else spans,
                       answer_choices=tuple(row.get("answer_choices") or ()),
                       answer_probs=tuple(row.get("answer_probs") or ()),
                       tag_weights=soft(row) if train else ())

    def soft(row: dict) -> tuple:
        if cfg.rationale_target != "soft":
            return ()
        weights = soft_rationale(row, common)
        counts["soft_rows" if weights else "soft_untagged"] += 1
        return weights

    def rows_of(split: str, order: bool = False, limit: int | None = None):
        sql = "SELECT * FROM clean WHERE split = ?" + (" ORDER BY sha256('order:' || example_id)" if order
                                                       else " ORDER BY example_id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for row in src.stream(sql, [split]):
            counts["rows_fetched"] += 1
            yield row

    val_split = cfg.val_split or next((s for s in VAL_SPLITS if s in clean), None)
    if not clean.get(cfg.train_split):
        raise ValueError(f"--train-split {cfg.train_split!r}: no usable rows; splits present: {sorted(clean) or 'none'}")
    train_rows, val_rows = [], []
    if val_split is None:  # carve validation from train by a hash of example_id; stop keeping train rows at the cap
        for row in rows_of(cfg.train_split, order=True):
            if _hash01("val:" + row["example_id"]) < cfg.val_fraction:
                val_rows.append(row)
            elif cfg.max_train_rows is None or len(train_rows) < cfg.max_train_rows:
                train_rows.append(row)
        val_source = f"{cfg.val_fraction:.0%} of {cfg.train_split} (hash of example_id)"
    else:
        if not clean.get(val_split):
            raise ValueError(f"--val-split {val_split!r}: no rows; splits present: {sorted(clean)}")
        train_rows = list(rows_of(cfg.train_split, order=True, limit=cfg.max_train_rows))
        if val_split != cfg.train_split:
            val_rows = list(rows_of(val_split))
        else:
            val_rows = train_rows
        val_source = val_split
    test_rows = list(rows_of(cfg.test_split)) if cfg.test_split and clean.get(cfg.test_split) else []
    used = {cfg.train_split, val_split, cfg.test_split}
    counts["other_split"] = sum(n for k, n in clean.items() if k not in used)

    common, repick = None, cfg.rationale_max_df is not None or cfg.rationale_fraction is not None
    if cfg.rationale_max_df is not None:  # document frequency over the training inputs, as the PaLM projection's
        common = common_words([r["tokens"] or [] for r in train_rows], cfg.rationale_max_df)
        counts.update(common_words=len(common))
    if repick:
        counts.update(rationale_repicked=0, rationale_filtered=0, rationale_none=0, rationale_all_common=0)
    if cfg.rationale_target == "soft":
        counts.update(soft_rows=0, soft_untagged=0)
    train = [e for e in (example(r, True) for r in train_rows) if e is not None]
    val = [e for e in (example(r, False) for r in val_rows) if e is not None]
    test = [e for e in (example(r, False) for r in test_rows) if e is not None]
    if not train:
        raise ValueError(f"--dataset {cfg.dataset!r}: every training row lacks a label (--labels {cfg.labels})")
    if not val:
        raise ValueError(f"--dataset {cfg.dataset!r}: no validation rows; pass --val-split or a larger --val-fraction")
    counts.update(train=len(train), val=len(val), test=len(test))
    return Data(train, val, test, counts, paths, val_source)
