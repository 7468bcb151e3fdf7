"""Every limit of the data layer is a named setting with a default and help text (STYLE.md 4).

Datasette style: one `SETTINGS` tuple feeds the command line (flags read their defaults from it),
the environment (`SALIENT_<NAME>` overrides a default, e.g. `SALIENT_SQL_TIME_LIMIT_S=30`) and
docs/storage.md (a test checks that every setting is documented there).

    from storage.settings import get_setting
    get_setting("sql_max_rows")                          # env override or default
    get_setting("sql_max_rows", {"sql_max_rows": 50})    # an explicit override wins
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    allow_zero: bool = False  # numbers must be positive; True also accepts 0 (e.g. actors=0: one per GPU)

    @property
    def env_var(self) -> str:
        return "SALIENT_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("sql_time_limit_s", 10.0,
            "Seconds one `salient sql` query may run; its worker process is then killed (SQLTimeout)."),
    Setting("sql_max_time_limit_s", 300.0,
            "Highest time limit a query may ask for (`--time-limit`); NaN, infinite or non-positive limits are refused."),
    Setting("sql_max_rows", 1000,
            "Most rows one SQL query returns; longer results are cut and reported as truncated."),
    Setting("sql_memory_limit", "1GB",
            "DuckDB memory_limit of the SQL sandbox; a query needing more fails (nothing spills to disk)."),
    Setting("sql_worker_overhead", "512MB",
            "Memory the SQL worker process may use beyond sql_memory_limit; past the sum it is refused or killed."),
    Setting("sql_max_result_bytes", 64 * 1024 * 1024,
            "Largest result (bytes, pickled rows) one SQL query may send back; a larger one is refused."),
    Setting("sql_threads", 2,
            "DuckDB threads of the SQL sandbox."),
    Setting("sql_workers", 2,
            "SQL worker processes one sandbox runs queries in at once (each within the memory bound); started as needed."),
    Setting("sql_max_query_chars", 100_000,
            "Longest SQL text the sandbox accepts."),
    Setting("catalog_lock_timeout_s", 30.0,
            "Seconds an operation waits for catalog.duckdb while another process writes it; then CatalogLocked."),
    Setting("catalog_read_cache_entries", 4096,
            "Catalog reads a process keeps and answers again while catalog.duckdb is unchanged; 0 turns the cache off.",
            allow_zero=True),
    Setting("parquet_row_group_size", 64_000,
            "Rows per Parquet row group in dataset parts written by `salient datasets add`."),
    Setting("ingest_max_line_bytes", 16 * 1024 * 1024,
            "Longest JSONL/CSV line (bytes) ingest accepts, checked while reading; also the largest JSON-array source."),
    Setting("ingest_batch_rows", 20_000,
            "Rows ingest parses and writes per record batch; ingest memory grows with this, not with the file."),
    Setting("ingest_duckdb_memory", "256MB",
            "DuckDB memory_limit of ingest's repeated-id check over the written rows; past it DuckDB spills to the work directory."),
    Setting("dataset_version_chars", 12,
            "Hex characters of the content hash used as a dataset version name."),
    # the store on object storage (docs/storage.md "Object storage")
    Setting("catalog_path", "",
            "Where catalog.duckdb lives; empty means <store>/catalog.duckdb for a local store and "
            "~/.cache/salient/catalogs/<bucket>/<prefix>/catalog.duckdb for an s3:// store (the catalog stays on "
            "the local disk of the one writer; `salient catalog rebuild` recreates it from the objects)."),
    Setting("s3_endpoint_url", "",
            "Endpoint of an S3-compatible object store for s3:// stores (e.g. http://minio:9000); empty means AWS S3. "
            "Credentials come from the AWS SDK chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), never from a setting."),
    Setting("s3_region", "us-east-1",
            "Region of the s3:// store's bucket."),
    # attribution jobs (attribution_worker; docs/jobs.md explains each)
    Setting("shard_size", 1000,
            "Rows per shard: the unit of dispatch, retry, commit and resume."),
    Setting("actors", 0,
            "TeacherActors in the pool; 0 means one per GPU in the cluster, or one on a CPU-only cluster.", allow_zero=True),
    Setting("actor_nice", 10,
            "Niceness added to each TeacherActor process (0 keeps the priority): attribution is batch work, so on "
            "a machine it shares with the REST service or a driver, they answer first.", allow_zero=True),
    Setting("num_cpus_per_actor", 1.0,
            "CPUs each CPU actor reserves (also its torch thread count); ignored for GPU actors."),
    Setting("max_in_flight_per_actor", 2,
            "Shards dispatched to one actor and not yet returned; bounds driver and object-store memory."),
    Setting("max_retries", 2,
            "Times one shard is retried after its actor died or its task failed; then the job fails naming the shard.",
            allow_zero=True),
    Setting("poll_interval_s", 1.0,
            "Seconds the driver waits for a finished shard before it checks for cancellation again."),
    Setting("actor_start_timeout_s", 300.0,
            "Seconds an actor may take to be placed and load the teacher before the job fails."),
    Setting("driver_start_timeout_s", 120.0,
            "Seconds `salient attribute` (no --wait) watches its background driver; a driver that exits "
            "before the job runs marks the job failed with its log's last lines."),
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
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{origin}={raw!r}: setting {s.name} must be a finite number ({s.help})")
    if isinstance(value, (int, float)) and (value < 0 or (value == 0 and not s.allow_zero)):
        floor = "must be >= 0" if s.allow_zero else "must be positive"
        raise ValueError(f"{origin}={raw!r}: setting {s.name} {floor} ({s.help})")
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
