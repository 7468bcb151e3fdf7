"""The FastAPI app: `create_app(settings)` (the full-stack template's app factory).

    from api.app.core.config import ServiceSettings
    from api.app.main import create_app
    app = create_app(ServiceSettings(insecure_no_auth=True))     # uvicorn.run(app, host=..., port=...)

Everything is under /v1 (OpenAPI at /docs and /openapi.json) except /healthz, /readyz and /metrics.
At start the app opens the store's catalog (one Catalog per process, shared by the routes and the
dispatcher), starts the dispatcher (which joins or starts Ray and resumes interrupted jobs) and the
SQL sandbox's workers, and at stop it stops dispatching and closes the catalog.
"""
from __future__ import annotations

import gc
import logging
import re
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .core.config import ServiceSettings
from .metrics import Metrics
from .routes import datasets, jobs, models, rationales, sql, system

_FLAG_IN_MESSAGE = re.compile(r"(?:Value error, )?--([a-z0-9][a-z0-9-]*):")
log = logging.getLogger(__name__)
API_DESCRIPTION = """salient's REST service: upload datasets, queue attribution jobs (idempotent, with
server-sent progress events), query the rationale tables with read-only SQL, view saliency heatmaps,
list and retrain student models. Send `Authorization: Bearer <token>`; tokens carry the scopes
`read` and `submit` (SALIENT_API_TOKENS)."""


def _warm_sql(catalog) -> None:
    """Start the SQL sandbox's workers now, so the first queries do not each wait ~0.5 s for a process."""
    from storage.sql import sandbox_for

    try:
        sandbox_for(catalog).warm()
    except Exception as exc:  # a damaged file fails its own queries later, with their own message
        log.warning("SQL workers not started ahead of the first query: %s", exc)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from storage import Catalog, Store

        from .dispatcher import Dispatcher
        from .idempotency import KeyBinder

        catalog = Catalog.open(Store.open(settings.store))
        app.state.catalog = catalog
        app.state.key_binder = KeyBinder(catalog).start()
        dispatcher = Dispatcher(catalog, settings, app.state.metrics)
        app.state.dispatcher = dispatcher
        try:
            dispatcher.start()
            threading.Thread(target=_warm_sql, args=(catalog,), name="salient-sql-warm", daemon=True).start()
            # Everything loaded so far (torch, Ray, pydantic models: millions of objects) lives as long as the
            # process; frozen, the cyclic GC stops walking it on every full collection. Unfrozen, those
            # collections paused every thread for tens of ms under load (benchmarks/api_load.py: p99 of
            # POST /v1/jobs 179 -> 101 ms at 32 clients).
            gc.freeze()
            yield
        finally:
            dispatcher.stop()
            app.state.key_binder.stop()
            catalog.close()

    app = FastAPI(title="salient", version="1", description=API_DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.tokens = settings.tokens()
    app.state.catalog = None
    app.state.idempotency_keys = {}  # Idempotency-Key -> (job id, spec); routes/jobs.py
    app.state.submit_lock = threading.Lock()  # one job creation at a time; routes/jobs.py
    app.state.metrics = Metrics(lambda: app.state.catalog)
    for module in (datasets, jobs, sql, rationales, models, system):
        app.include_router(module.router)

    @app.exception_handler(RequestValidationError)
    async def _field_named(request: Request, exc: RequestValidationError):
        """422 whose `loc` ends with the field: model-level checks (AttributionConfig) say `--k: ...` in the message."""
        errors = []
        for e in exc.errors():
            named = _FLAG_IN_MESSAGE.match(str(e.get("msg", "")))
            if named and e.get("loc") and e["loc"][-1] != named.group(1).replace("-", "_"):
                e = {**e, "loc": [*e["loc"], named.group(1).replace("-", "_")]}
            errors.append(e)
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    from storage.catalog import CatalogLocked

    @app.exception_handler(CatalogLocked)
    async def _locked(request: Request, exc: CatalogLocked):
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    from .middleware import BodyLimit, Timing

    app.add_middleware(Timing, histogram=app.state.metrics.http_seconds)
    app.add_middleware(BodyLimit, upload_limit=settings.max_upload_bytes, request_limit=settings.max_request_bytes)
    return app
