"""Subcommands of `salient`; each module has `register(subparsers)` (see api/cli.py)."""
