"""`salient datasets add|ls|show`: ingest source files into the store and look at what is there."""
from __future__ import annotations

import argparse
import textwrap

from storage.ingest import FORMATS, IngestOptions, ingest
from storage.objects import parquet_source

from .common import open_catalog, print_rows

_ADD_EPILOG = """\
examples:
  salient datasets add cqa ../shared/datasets/cqa --format cqa          # train + test, with PaLM rationales
  salient datasets add esnli ../shared/datasets/esnli --split test       # one split (format detected)
  salient datasets add mine data.jsonl --input-field question --target-field answer --split train
  salient datasets add mine data.csv --input-template "{title}\\n{body}" --target-field label

Adding the same content again changes nothing (the version is a hash of the files and options).
A malformed record fails the whole ingest with file:line and leaves the store unchanged (exit 2):
invalid JSON, a line over ingest_max_line_bytes, NaN/Infinity, or a text field holding a number,
list or object (pass --coerce to store those as text). Sources of any size stream in batches.
"""


def register(sub) -> None:
    p = sub.add_parser("datasets", help="ingest datasets and list them")
    dsub = p.add_subparsers(dest="datasets_command", metavar="ACTION")
    dsub.required = True

    add = dsub.add_parser(
        "add", help="ingest a JSONL/CSV/Parquet file or a DSS dataset directory as dataset NAME",
        description="Parse and validate PATH, then write one Parquet part per split and register it in the catalog.",
        epilog=_ADD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add.add_argument("name", metavar="NAME", help="dataset name (letters, digits, '_', '.', '-')")
    add.add_argument("path", metavar="PATH", help="a source file, or a directory holding <name>_<split>.json for the DSS formats")
    add.add_argument("--format", default="auto", choices=FORMATS,
                     help="source format (default: auto = DSS adapter by file name, else by extension)")
    add.add_argument("--split", metavar="SPLIT", help="generic formats: split name of every row (default train); DSS formats: only this split")
    add.add_argument("--id-field", metavar="FIELD", help="field with a unique example id (default: id/example_id/uid if present, else a hash of the input)")
    add.add_argument("--input-field", metavar="FIELD", help="field with the model input (default: input)")
    add.add_argument("--input-template", metavar="TEMPLATE",
                     help="build the input from fields, e.g. '{question}\\nContext: {context}' (\\n and \\t become newline and tab); "
                          "plain {field} substitution only: no {a.b}, {a[0]}, {a!r} or {a:>9}")
    add.add_argument("--target-field", metavar="FIELD", help="field with the gold answer (default: target/label/answer if present)")
    add.add_argument("--choices-field", metavar="FIELD", help="field with the answer choices: a list or a JSON array string (default: choices if present)")
    add.add_argument("--coerce", action="store_true",
                     help="store non-string values of the input/id/target/template fields (numbers, lists, objects) "
                          "as text instead of refusing them")
    add.add_argument("--no-llm", dest="llm", action="store_false",
                     help="DSS formats: skip the PaLM rationales in llm/ (llm_rationale, llm_label columns)")
    add.set_defaults(func=cmd_add)

    ls = dsub.add_parser("ls", help="list datasets: one row per (name, split) version")
    ls.add_argument("--all", action="store_true", help="include superseded (inactive) versions")
    ls.set_defaults(func=cmd_ls)

    show = dsub.add_parser("show", help="one dataset: its versions, columns and a few rows")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--rows", type=int, default=3, help="sample rows to print per split (default 3)")
    show.set_defaults(func=cmd_show)


def _unescape(template: str | None) -> str | None:
    """A shell gives '\\n' as two characters; templates mean a newline (and '\\t' a tab)."""
    return template.replace("\\n", "\n").replace("\\t", "\t") if template else template


def cmd_add(args) -> int:
    opts = IngestOptions(
        format=args.format, split=args.split, id_field=args.id_field, input_field=args.input_field,
        input_template=_unescape(args.input_template), target_field=args.target_field, choices_field=args.choices_field,
        llm=args.llm, coerce=args.coerce,
    )
    with open_catalog(args) as cat:
        results = ingest(cat, args.name, args.path, opts)
    print_rows([
        {"name": r.name, "split": r.split, "version": r.version, "rows": r.rows, "status": r.status,
         "notes": "; ".join(r.notes), "path": r.path} for r in results
    ])
    if all(r.status == "unchanged" for r in results):
        print("nothing to do: this content is already the active version")
    return 0


def cmd_ls(args) -> int:
    with open_catalog(args) as cat:
        rows = [r for r in cat.datasets() if args.all or r["active"]]
    if not rows:
        print("no datasets yet: add one with `salient datasets add NAME PATH` (see --help)")
        return 0
    print_rows(rows, columns=["name", "split", "version", "rows", "format", "active", "created_at"])
    return 0


def cmd_show(args) -> int:
    import pyarrow.parquet as pq

    with open_catalog(args) as cat:
        versions = [r for r in cat.datasets() if r["name"] == args.name]
        if not versions:
            raise ValueError(f"no dataset {args.name!r}: list datasets with `salient datasets ls` "
                             "or add it with `salient datasets add NAME PATH`")
        print(f"dataset {args.name}")
        print_rows(versions, columns=["split", "version", "rows", "format", "active", "created_at", "source", "path"])
        for r in versions:
            if not r["active"]:
                continue
            path = cat.store.absolute(r["path"])
            schema = pq.read_schema(parquet_source(path))
            print(f"\n{r['split']} ({r['rows']} rows, version {r['version']}): "
                  + ", ".join(f"{f.name} {f.type}" for f in schema))
            if args.rows > 0:
                sample = pq.read_table(parquet_source(path), columns=[c for c in ("example_id", "input", "target") if c in schema.names])
                for row in sample.slice(0, args.rows).to_pylist():
                    text = textwrap.shorten(row["input"].replace("\n", " | "), 110)
                    print(f"  {row['example_id']}: {text}  ->  {row.get('target')}")
    return 0
