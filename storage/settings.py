"""Every limit of the data layer is a named setting with a default and help text (STYLE.md 4).

Datasette style: one `SETTINGS` tuple feeds the command line (flags read their defaults from it),
the environment (`SALIENT_<NAME>` overrides a default, e.g. `SALIENT_SQL_TIME_LIMIT_S=30`) and
docs/storage.md (a test checks that every setting is documented there).

    from storage.settings import get_setting
    get_setting("sql_max_rows")                          # env override or default
    get_setting("sql_max_rows", {"sql_max_rows": 50})    # an explicit override wins
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str

    @property
    def env_var(self) -> str:
        return "SALIENT_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("sql_time_limit_s", 10.0,
            "Seconds one `salient sql` query may run; a timer then interrupts it (SQLTimeout)."),
    Setting("sql_max_rows", 1000,
            "Most rows one SQL query returns; longer results are cut and reported as truncated."),
    Setting("sql_memory_limit", "1GB",
            "DuckDB memory_limit of the SQL sandbox; a query needing more fails (nothing spills to disk)."),
    Setting("sql_threads", 2,
            "DuckDB threads of the SQL sandbox."),
    Setting("sql_max_query_chars", 100_000,
            "Longest SQL text the sandbox accepts."),
    Setting("catalog_lock_timeout_s", 30.0,
            "Seconds an operation waits for catalog.duckdb while another process writes it; then CatalogLocked."),
    Setting("parquet_row_group_size", 64_000,
            "Rows per Parquet row group in dataset parts written by `salient datasets add`."),
    Setting("ingest_max_line_bytes", 16 * 1024 * 1024,
            "Longest JSONL line (bytes) ingest accepts; a longer line fails the ingest with its line number."),
    Setting("dataset_version_chars", 12,
            "Hex characters of the content hash used as a dataset version name."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def setting(name: str) -> Setting:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown setting {name!r}; known settings: {', '.join(_BY_NAME)}") from None


def coerce(s: Setting, raw: Any, origin: str) -> Any:
    kind = type(s.default)
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        value = raw
    else:
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{origin}={raw!r} is not a valid {kind.__name__} for setting {s.name} ({s.help})") from None
    if isinstance(value, (int, float)) and value <= 0:
        raise ValueError(f"{origin}={raw!r}: setting {s.name} must be positive ({s.help})")
    return value


def get_setting(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The value of `name`: an explicit, non-None override, else $SALIENT_<NAME>, else the default."""
    s = setting(name)
    if overrides and overrides.get(name) is not None:
        return coerce(s, overrides[name], f"--{name.replace('_', '-')}")
    env = os.environ.get(s.env_var)
    if env not in (None, ""):
        return coerce(s, env, s.env_var)
    return s.default


def all_settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {s.name: get_setting(s.name, overrides) for s in SETTINGS}
