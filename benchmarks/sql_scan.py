"""SQL scan speed over rationale shards: three typical queries through the read-only sandbox.

    .venv/bin/python benchmarks/sql_scan.py                    # 1,000,000 rows, 2 threads
    .venv/bin/python benchmarks/sql_scan.py --rows 100000 --threads 1 --repeats 5
    .venv/bin/python benchmarks/sql_scan.py --store /tmp/bench --keep   # keep the store to poke at it

Writes --rows synthetic rationale rows (RATIONALE_SCHEMA: 24 words per input from a 5,000-word
vocabulary with a skewed distribution, top-5 rationale, scores, spans) as shards of --shard-rows
with storage.write_shard, spread over --datasets datasets, plus one example row per rationale as
dataset parts (registered the way `salient datasets add` registers them). Then times, through
storage.sql.Sandbox (memory_limit and threads as the SQL settings), the median of --repeats runs of

  rows_per_dataset  SELECT dataset, count(*) FROM rationales GROUP BY dataset
  top50_words       SELECT token, count(*) FROM rationale_tokens GROUP BY token ORDER BY 2 DESC LIMIT 50
  join_examples     rationales JOIN examples ON example_id, grouped by dataset and target

and prints a Markdown table with the first run's seconds (page cache warm from writing), the median,
the rows each query reads (rationales; rationale_tokens rows; rationales + examples for the join)
and those rows per second at the median. A first line gives the sandbox's own cost: starting its
worker process and the round trip of `SELECT 1`.
Target: each under 2 s at 1M rows on 2 cores (judged only at that size).
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from storage import Catalog, Store, write_shard  # noqa: E402
from storage.ingest import part_metadata  # noqa: E402
from storage.parquet_io import write_parquet_atomic  # noqa: E402
from storage.settings import get_setting  # noqa: E402
from storage.sql import Sandbox  # noqa: E402

DEFAULT_ROWS = 1_000_000
QUERIES = {
    "rows_per_dataset": "SELECT dataset, count(*) AS n FROM rationales GROUP BY dataset ORDER BY dataset",
    "top50_words": "SELECT token, count(*) AS n FROM rationale_tokens GROUP BY token ORDER BY n DESC, token LIMIT 50",
    "join_examples": (
        "SELECT e.dataset, e.target, count(*) AS n, avg(length(e.input)) AS input_chars "
        "FROM rationales r JOIN examples e ON r.example_id = e.example_id GROUP BY ALL ORDER BY n DESC LIMIT 100"
    ),
}

# One row per i: 24 words drawn with a skew (squared uniform -> frequent low ids), top-5 rationale.
_SHARD_SQL = """
SELECT 'd{d}-' || i AS example_id, 'synth{d}' AS dataset, 'train' AS split, '{job}' AS job_id,
       {index}::INTEGER AS shard_index, array_to_string(toks, ' ') AS input_text, toks[1] AS target_text,
       'synthetic/tiny' AS teacher_model, 'saliency' AS method, toks[1] AS teacher_output,
       (i % 3 <> 0) AS teacher_correct, toks AS tokens,
       list_transform(range(24), lambda j: {{'start': (j * 6)::INTEGER, 'end': (j * 6 + 5)::INTEGER}}) AS spans,
       list_transform(range(24), lambda j: ((hash(i, j) % 1000) / 1000.0)::FLOAT) AS scores,
       list_slice(toks, 3, 7) AS rationale, array_to_string(list_slice(toks, 3, 7), ' ') AS rationale_text,
       CASE WHEN i % 97 = 0 THEN 'synthetic error' END AS error, TIMESTAMPTZ '2026-01-01 00:00:00+00' AS created_at,
       NULL::FLOAT AS teacher_logprob, NULL::FLOAT AS comprehensiveness, NULL::FLOAT AS sufficiency,
       NULL::BOOLEAN AS gold_overlap
FROM (SELECT i, list_transform(range(24), lambda j: 'w' || (((hash(i * 31 + j) % 5000) ^ 2) // 5000)::BIGINT) AS toks
      FROM range({start}, {stop}) t(i))
"""

_EXAMPLES_SQL = """
SELECT 'd{d}-' || i AS example_id, 'question ' || i || ' about w' || (i % 5000) AS input,
       'w' || (i % 50) AS target, NULL::VARCHAR[] AS choices, 'train' AS split, 'synth{d}' AS dataset
FROM range({start}, {stop}) t(i)
"""


def build_store(root: Path, rows: int, shard_rows: int, datasets: int) -> float:
    """Write the synthetic store; returns seconds spent."""
    start = time.perf_counter()
    gen = duckdb.connect()
    per = [rows // datasets + (1 if d < rows % datasets else 0) for d in range(datasets)]
    with Catalog.open(Store.open(root)) as cat:
        offset = 0
        for d, n in enumerate(per):
            name, job = f"synth{d}", f"bench-{d}"
            examples = gen.sql(_EXAMPLES_SQL.format(d=d, start=offset, stop=offset + n)).to_arrow_table()
            version, now = f"bench{d:07d}", dt.datetime.now(dt.timezone.utc)
            part = cat.store.dataset_part(name, version, 0)
            write_parquet_atomic(examples, part, metadata=part_metadata(
                name=name, version=version, split="train", rows=n, format="synthetic", source="benchmarks/sql_scan.py",
                content_hash=version, created_at=now))
            cat.register_dataset_part(name=name, version=version, split="train", path=cat.store.relative(part), rows=n,
                                      format="synthetic", source="benchmarks/sql_scan.py", content_hash=version,
                                      created_at=now)
            shards = (n + shard_rows - 1) // shard_rows
            cat.create_job(job, dataset=name, split="train", spec={"synthetic": True}, total_rows=n, shards_total=shards)
            cat.mark_running(job)
            for index in range(shards):
                lo = offset + index * shard_rows
                hi = min(offset + n, lo + shard_rows)
                table = gen.sql(_SHARD_SQL.format(d=d, job=job, index=index, start=lo, stop=hi)).to_arrow_table()
                write_shard(cat, table, dataset=name, job_id=job, index=index)
            cat.mark_succeeded(job)
            offset += n
    gen.close()
    return time.perf_counter() - start


def scanned_rows(box: Sandbox, rows: int) -> dict[str, int]:
    """The input rows each query reads."""
    tokens = box.run("SELECT count(*) FROM rationale_tokens", time_limit_s=300).rows[0][0]
    examples = box.run("SELECT count(*) FROM examples", time_limit_s=300).rows[0][0]
    return {"rows_per_dataset": rows, "top50_words": tokens, "join_examples": rows + examples}


def time_queries(root: Path, rows: int, threads: int, repeats: int) -> tuple[dict, list[dict]]:
    """(sandbox overhead: worker start and SELECT 1 round trip, one dict per query)."""
    out = []
    with Catalog.open(Store.open(root)) as cat:
        box = Sandbox(cat, threads=threads)
        try:
            start = time.perf_counter()
            box.run("SELECT 1")  # start the worker and build its database outside the timings
            overhead = {"start_s": time.perf_counter() - start}
            trips = []
            for _ in range(20):
                t0 = time.perf_counter()
                box.run("SELECT 1")
                trips.append(time.perf_counter() - t0)
            overhead["select1_s"] = statistics.median(trips)
            scanned = scanned_rows(box, rows)
            for name, sql in QUERIES.items():
                times, result = [], None
                for _ in range(repeats):
                    result = box.run(sql, max_rows=1000, time_limit_s=300)
                    times.append(result.elapsed_s)
                med = statistics.median(times)
                out.append({"query": name, "first_s": times[0], "median_s": med, "scanned": scanned[name],
                            "rows_per_s": scanned[name] / med, "result_rows": result.row_count})
        finally:
            box.close()
    return overhead, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="synthetic rationale rows (default 1,000,000)")
    p.add_argument("--shard-rows", type=int, default=100_000, help="rows per shard (default 100,000)")
    p.add_argument("--datasets", type=int, default=3, help="datasets the rows are spread over (default 3)")
    p.add_argument("--threads", type=int, default=get_setting("sql_threads"), help="sandbox threads (default: sql_threads)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per query; the median is reported (default 3)")
    p.add_argument("--store", type=Path, default=None, help="store directory (default: a temporary one, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the store directory")
    args = p.parse_args(argv)
    root = args.store or Path(tempfile.mkdtemp(prefix="salient-sqlbench-"))
    if root.exists() and any(root.iterdir()):
        print(f"{root} is not empty: pass an empty or new --store directory", file=sys.stderr)
        return 2
    try:
        build_s = build_store(root, args.rows, args.shard_rows, args.datasets)
        size = sum(f.stat().st_size for f in root.rglob("*.parquet"))
        print(f"wrote {args.rows:,} rationale rows + {args.rows:,} examples in {build_s:.1f} s "
              f"({size / 2**20:.0f} MiB Parquet, shards of {args.shard_rows:,}); sandbox threads={args.threads}, "
              f"memory_limit={get_setting('sql_memory_limit')}")
        overhead, results = time_queries(root, args.rows, args.threads, args.repeats)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"sandbox: worker start + build {overhead['start_s']:.3f} s; SELECT 1 round trip {overhead['select1_s'] * 1000:.2f} ms "
          "(median of 20)")
    print("\n| query | first s | median s | rows read | rows read/s (median) | result rows |\n|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['query']} | {r['first_s']:.3f} | {r['median_s']:.3f} | {r['scanned']:,} | {r['rows_per_s']:,.0f} "
              f"| {r['result_rows']} |")
    slow = [r["query"] for r in results if r["median_s"] > 2.0]
    if args.rows == DEFAULT_ROWS and args.threads == 2:
        print("\ntarget (< 2 s each at 1M rows on 2 cores): " + ("met" if not slow else "missed by " + ", ".join(slow)))
    else:
        print(f"\ntarget (< 2 s each) is judged at --rows {DEFAULT_ROWS:,} --threads 2 only; "
              f"this run: {args.rows:,} rows, {args.threads} threads" + (f"; over 2 s: {', '.join(slow)}" if slow else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
