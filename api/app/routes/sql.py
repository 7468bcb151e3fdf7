"""`POST /v1/sql`: one read-only statement through the storage sandbox (storage.sql.run_sql).

Body `{"query": "...", "limit": N, "time_limit_s": S, "format": "json" | "csv" | "arrow"}` (or
`?format=`). json: `{columns, rows, truncated, elapsed_ms}`; csv: the `salient sql --format csv`
text; arrow: an Arrow IPC stream (`pyarrow.ipc.open_stream`), for large pulls. `X-Salient-Truncated`
says whether the row cap cut the result. The limits are the data layer's settings (sql_time_limit_s,
sql_max_rows, sql_memory_limit, sql_max_query_chars); a refused statement or bad SQL gets 400, a
query past its time limit 408.
"""
from __future__ import annotations

import io
import time
from typing import Literal

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from storage import Catalog
from storage.settings import get_setting
from storage.sql import TABLES, SQLRefused, SQLTimeout, run_sql

from ..deps import get_catalog, require
from ..jsonable import jsonable

router = APIRouter(prefix="/v1", tags=["sql"])
Format = Literal["json", "csv", "arrow"]


class SQLQuery(BaseModel):
    query: str = Field(min_length=1, max_length=get_setting("sql_max_query_chars"),
                       description=f"One read-only statement over {', '.join(TABLES)}.")
    limit: int | None = Field(None, ge=1, description="Row cap (default sql_max_rows).")
    time_limit_s: float | None = Field(None, gt=0, le=3600, description="Seconds (default sql_time_limit_s).")
    format: Format = Field("json", description="json | csv | arrow (Arrow IPC stream).")


@router.post("/sql", dependencies=[Depends(require("read"))],
             responses={200: {"content": {"text/csv": {}, "application/vnd.apache.arrow.stream": {}}},
                        400: {"description": "refused statement or SQL error"},
                        408: {"description": "the query ran past its time limit"}})
def sql(body: SQLQuery, request: Request, format: Format | None = Query(None),
        catalog: Catalog = Depends(get_catalog)):
    fmt = format or body.format
    metrics = request.app.state.metrics
    t0 = time.perf_counter()
    try:
        result = run_sql(catalog, body.query, max_rows=body.limit, time_limit_s=body.time_limit_s)
    except SQLRefused as exc:
        raise HTTPException(400, f"refused: {exc}") from None
    except SQLTimeout as exc:
        raise HTTPException(408, str(exc)) from None
    except duckdb.Error as exc:
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HTTPException(400, f"SQL error: {msg} (tables: {', '.join(TABLES)})") from None
    finally:
        metrics.sql_seconds.observe(time.perf_counter() - t0)
    headers = {"X-Salient-Truncated": str(result.truncated).lower()}
    if fmt == "csv":
        from api.commands.common import print_rows

        out = io.StringIO()
        print_rows(result.rows, columns=result.columns, fmt="csv", out=out)
        return Response(out.getvalue(), media_type="text/csv", headers=headers)
    if fmt == "arrow":
        import pyarrow as pa

        table = pa.Table.from_pylist([dict(zip(result.columns, r)) for r in result.rows]) if result.rows else \
            pa.table({c: pa.array([], pa.null()) for c in result.columns})
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return Response(sink.getvalue(), media_type="application/vnd.apache.arrow.stream", headers=headers)
    return {"columns": result.columns, "rows": jsonable(result.rows), "truncated": result.truncated,
            "elapsed_ms": round(result.elapsed_s * 1000, 3)}
