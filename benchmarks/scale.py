"""Scale: ingest a generated multi-GB JSONL with bounded memory, then query it through the SQL sandbox.

    nice .venv/bin/python benchmarks/scale.py                          # 5,000,000 rows, about 2 GB
    nice .venv/bin/python benchmarks/scale.py --rows 200000            # a quick run (about 80 MB)
    nice .venv/bin/python benchmarks/scale.py --sections ingest --keep --dir /tmp/scale

Sections (`--sections`, comma separated, run in this order; each is one function taking the run's
Context and returning its table rows, so later sections such as an attribution section plug in
the same way: add a function and a SECTIONS entry):

  generate  DuckDB writes --rows synthetic JSON Lines records (id, a 24-word input from a 5,000-word
            vocabulary with a skewed distribution, target, a 5-word `keywords` list, a score, a
            padding note) to <dir>/source.jsonl: about 400 bytes a record, 2 GB at 5M rows.
  ingest    `salient datasets add` (storage.ingest.ingest) in a child process; the child reports its
            peak RSS (VmHWM) and its ingest time (rows/s); CPU seconds come from os.wait4. Targets: peak RSS < 1 GB, >= 100k rows/s.
  sql       sql_scan-style queries over the ingested rows through storage.sql.Sandbox (the worker
            process, sql_memory_limit / sql_threads); the median of --repeats runs. Target: < 2 s each.

Prints one Markdown table per section and a line per target (met / missed), only for the default size.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_ROWS = 5_000_000
GiB, MiB = 2**30, 2**20

QUERIES = {
    "rows_per_target": "SELECT target, count(*) AS n FROM examples GROUP BY target ORDER BY n DESC LIMIT 100",
    "top50_keywords": ("SELECT k AS token, count(*) AS n FROM (SELECT unnest(keywords) AS k FROM examples) "
                       "GROUP BY k ORDER BY n DESC, k LIMIT 50"),
    "filter_and_join": (
        "SELECT e.target, count(*) AS n, avg(length(e.input)) AS input_chars FROM examples e "
        "JOIN (SELECT example_id FROM examples WHERE source_index % 10 = 0) s USING (example_id) "
        "GROUP BY ALL ORDER BY n DESC LIMIT 100"),
}

_GENERATE_SQL = """
COPY (
  SELECT 'ex-' || i AS id,
         array_to_string(list_transform(range(24), lambda j: 'w' || (((hash(i * 31 + j) % 5000) ^ 2) // 5000)::BIGINT), ' ')
           AS input,
         'label' || (hash(i) % 50) AS target,
         list_transform(range(5), lambda j: 'w' || (((hash(i * 17 + j) % 5000) ^ 2) // 5000)::BIGINT) AS keywords,
         ((hash(i) % 1000) / 1000.0)::DOUBLE AS score,
         repeat('n', 150 + (i % 50)::INTEGER) AS note
  FROM range({rows}) t(i)
) TO '{path}' (FORMAT json)
"""

_INGEST_CHILD = textwrap.dedent("""
    import sys, time
    from storage import Catalog, Store
    from storage.ingest import IngestOptions, ingest
    start = time.perf_counter()
    with Catalog.open(Store.open(sys.argv[1])) as cat:
        (r,) = ingest(cat, "scale", sys.argv[2], IngestOptions(format="jsonl"))
    elapsed = time.perf_counter() - start
    # VmHWM: this process image's own peak RSS (wait4's ru_maxrss would include the parent's pages at fork)
    peak_kib = next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    print(r.rows, r.version, elapsed, peak_kib)
""")


@dataclass
class Context:
    """What the sections share: the work directory, the sizes and what earlier sections produced."""

    dir: Path
    rows: int
    repeats: int
    threads: int
    default_size: bool
    source: Path | None = None
    store: Path | None = None
    ingested_rows: int = 0
    targets: list[tuple[str, bool]] = field(default_factory=list)


def section_generate(ctx: Context) -> list[dict]:
    import duckdb

    ctx.source = ctx.dir / "source.jsonl"
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {ctx.threads}")
    con.execute(_GENERATE_SQL.format(rows=ctx.rows, path=str(ctx.source).replace("'", "''")))
    con.close()
    size = ctx.source.stat().st_size
    return [{"rows": f"{ctx.rows:,}", "bytes": f"{size / GiB:.2f} GiB", "bytes/row": f"{size / ctx.rows:.0f}",
             "seconds": f"{time.perf_counter() - start:.1f}"}]


def section_ingest(ctx: Context) -> list[dict]:
    if ctx.source is None:
        ctx.source = ctx.dir / "source.jsonl"
    ctx.store = ctx.dir / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _INGEST_CHILD, str(ctx.store), str(ctx.source)],
                            stdout=subprocess.PIPE, env=env)
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the ingest child failed (status {status}); run it by hand to see why")
    rows, version, inner, peak_kib = out.strip().splitlines()[-1].split()
    ctx.ingested_rows = int(rows)
    peak = int(peak_kib) * 1024
    part = next((ctx.store / "datasets" / "scale").rglob("part-*.parquet"))
    rate = ctx.ingested_rows / float(inner)
    ctx.targets += [("ingest peak RSS < 1 GiB", peak < GiB), ("ingest >= 100k rows/s", rate >= 100_000)]
    return [{"rows": f"{ctx.ingested_rows:,}", "source": f"{ctx.source.stat().st_size / GiB:.2f} GiB",
             "part": f"{part.stat().st_size / MiB:.0f} MiB", "seconds": f"{float(inner):.1f}",
             "rows/s": f"{rate:,.0f}", "peak RSS (child)": f"{peak / MiB:.0f} MiB",
             "child CPU s": f"{usage.ru_utime + usage.ru_stime:.1f}", "wall s": f"{wall:.1f}"}]


def section_sql(ctx: Context) -> list[dict]:
    from storage import Catalog, Store
    from storage.sql import Sandbox

    store = ctx.store or ctx.dir / "store"
    out = []
    with Catalog.open(Store.open(store, create=False)) as cat:
        box = Sandbox(cat, threads=ctx.threads)
        try:
            start = time.perf_counter()
            box.run("SELECT 1")
            startup = time.perf_counter() - start
            small = [box.run("SELECT 1").elapsed_s for _ in range(20)]
            out.append({"query": "SELECT 1 (worker start / round trip)", "first s": f"{startup:.3f}",
                        "median s": f"{statistics.median(small):.4f}", "rows/s": "", "result rows": 1})
            for name, sql in QUERIES.items():
                times, result = [], None
                for _ in range(ctx.repeats):
                    result = box.run(sql, max_rows=1000, time_limit_s=300)
                    times.append(result.elapsed_s)
                med = statistics.median(times)
                ctx.targets.append((f"sql {name} < 2 s", med < 2.0))
                out.append({"query": name, "first s": f"{times[0]:.3f}", "median s": f"{med:.3f}",
                            "rows/s": f"{ctx.ingested_rows / med:,.0f}" if ctx.ingested_rows else "",
                            "result rows": result.row_count})
        finally:
            box.close()
    return out


SECTIONS = {"generate": section_generate, "ingest": section_ingest, "sql": section_sql}


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n### {title}\n")
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"generated records (default {DEFAULT_ROWS:,}, about 2 GB)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated sections to run ({', '.join(SECTIONS)})")
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads for generating and the SQL sandbox (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per query; the median is reported (default 3)")
    p.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (source, store)")
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    work = args.dir or Path(tempfile.mkdtemp(prefix="salient-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(work, args.rows, args.repeats, args.threads, default_size=args.rows == DEFAULT_ROWS)
    try:
        print(f"scale benchmark: {args.rows:,} rows, sections {', '.join(chosen)}, work dir {work}, {os.cpu_count()} CPUs")
        for name in chosen:
            print_table(name, SECTIONS[name](ctx))
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if ctx.targets:
        print()
        for label, ok in ctx.targets:
            verdict = ("met" if ok else "MISSED") if ctx.default_size else f"{'under' if ok else 'over'} (not the target size)"
            print(f"target {label}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
