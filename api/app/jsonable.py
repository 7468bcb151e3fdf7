"""JSON-safe values for responses: datetimes as ISO strings, NaN/inf floats as null, numpy scalars as Python."""
from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return jsonable(value.item())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
