"""`salient`: one command, subcommands in a dispatch table (STYLE.md 2).

Each module in COMMAND_MODULES defines `register(subparsers)`, which adds its subcommands and
sets `func` (called with the parsed args; returns an exit code). Modules only parse arguments
and call the libraries.

Exit codes: 0 ok, 1 the operation failed, 2 bad usage or input (the message says the fix),
3 catalog.duckdb stayed locked by another process past catalog_lock_timeout_s.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = (
    "api.commands.catalog",
    "api.commands.attribute_local",
    "api.commands.attribute",
    "api.commands.datasets",
    "api.commands.sql",
    "api.commands.train",
    "api.commands.demo",
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salient",
        description="Attribution-guided knowledge distillation: teacher saliency -> rationale shards -> students.",
    )
    parser.add_argument(
        "--store", default=None,
        help="store root directory (default: $SALIENT_STORE, else ./salient-data)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from storage import CatalogCorrupt, CatalogLocked

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CatalogLocked as exc:
        print(f"salient: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except CatalogCorrupt as exc:
        print(f"salient: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, FileNotFoundError) as exc:
        print(f"salient: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("salient: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last resort: one line, not a traceback, unless asked
        if os.environ.get("SALIENT_DEBUG"):
            raise
        print(f"salient: {type(exc).__name__}: {exc} (set SALIENT_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
