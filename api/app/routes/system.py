"""`/healthz` (the process answers), `/readyz` (catalog and dispatcher ready), `/metrics` (Prometheus)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=None)
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready: the reason is in `detail`"}})
def readyz(request: Request):
    state = request.app.state
    try:
        state.catalog.query("SELECT 1 AS ok")
    except Exception as exc:
        return JSONResponse({"status": "not ready", "detail": f"catalog: {exc}"}, status_code=503)
    if not state.dispatcher.ready():
        return JSONResponse({"status": "not ready", "detail": "dispatcher or Ray not running"}, status_code=503)
    return {"status": "ready", "store": str(state.catalog.store.root), "active_jobs": state.dispatcher.active()}


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
