"""salient's data layer: schemas, store layout, atomic Parquet, the DuckDB catalog, safe SQL.

Imports nothing from the other salient packages.
"""
from .catalog import Catalog, CatalogCorrupt, CatalogError, CatalogLocked, JobStateError
from .parquet_io import read_parquet, write_json_atomic, write_parquet_atomic
from .schemas import DATASET_SCHEMA, RATIONALE_SCHEMA, RATIONALE_SCHEMA_VERSION, rationale_table
from .shards import write_shard
from .store import Store

__all__ = [
    "Catalog", "CatalogCorrupt", "CatalogError", "CatalogLocked", "JobStateError", "DATASET_SCHEMA", "RATIONALE_SCHEMA",
    "RATIONALE_SCHEMA_VERSION", "Store", "rationale_table", "read_parquet", "write_json_atomic",
    "write_parquet_atomic", "write_shard",
]
