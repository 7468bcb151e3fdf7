"""`/v1/jobs`: submit (idempotent), status, cursor pages, cancel, server-sent progress events.

The body of `POST /v1/jobs` is `attribution_worker.jobs.JobSpec`, the same model `salient attribute`
builds from its flags, so every engine option is there and a bad field gets 422 naming it.

Idempotency-Key (optional header):
* a key already used with the same body: 200 with the existing job;
* a key already used with a different body: 409 saying so;
* otherwise the job is created (queued, 202 with `Location: /v1/jobs/{id}`), or, when its spec
  already names an existing job (the job id is derived from the spec and the dataset version), that
  job is returned with 200 (a failed one is queued again and resumes: 202).
"""
from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from attribution_worker.jobs import JobSpec
from storage import Catalog
from storage.catalog import JOB_STATES, TERMINAL_STATES, JobStateError

from ..deps import get_catalog, get_dispatcher, get_settings, require
from ..jsonable import jsonable

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
_404 = {404: {"description": "no such job"}}
_SUMMARY = ("job_id", "dataset", "split", "status", "total_rows", "done_rows", "error_rows", "shards_total",
            "shards_done", "message", "created_at", "started_at", "finished_at", "updated_at")


def _comparable(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "dataset_versions"}


def _validate(spec: JobSpec) -> None:
    """A literal prompt template is plain `{input}` substitution (storage.templates), refused with 422 otherwise."""
    from attribution_worker.templates import TEMPLATES, resolve_template
    from storage.templates import check_template

    template = spec.engine.template
    if template is not None:
        try:
            if template not in TEMPLATES:
                check_template(template, fields=["input"])
            resolve_template(template)
        except ValueError as exc:
            raise HTTPException(422, [{"loc": ["body", "template"], "msg": str(exc), "type": "value_error"}]) from None


def _job_body(catalog: Catalog, job: dict, shards: bool = False) -> dict:
    body = {k: job.get(k) for k in _SUMMARY}
    body["spec"] = job.get("spec")
    body["idempotency_key"] = job.get("idempotency_key")
    started, finished = job.get("started_at"), job.get("finished_at")
    body["seconds"] = (finished - started).total_seconds() if started and finished else None
    if shards:
        body["shards"] = catalog.job_shards(job["job_id"])
    return jsonable(body)


def _found(catalog: Catalog, job_id: str) -> dict:
    job = catalog.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}: GET /v1/jobs lists them")
    return job


def _replay(catalog: Catalog, key: str, bound: tuple[str, dict], mine: dict, response: Response) -> dict:
    """The answer to a key already used: its job (200), or 409 when this body (`mine`, as _comparable gives it)
    differs from the first."""
    job_id, stored = bound
    if stored != mine:
        raise HTTPException(409, f"Idempotency-Key {key!r} was used for job {job_id} "
                                 "with a different body: use a new key for a different job")
    response.status_code = 200
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return _job_body(catalog, _found(catalog, job_id))


@router.post("", response_model=None, status_code=202, dependencies=[Depends(require("submit"))],
             responses={200: {"description": "the existing job (same Idempotency-Key and body, or the same spec)"},
                        409: {"description": "the Idempotency-Key was used with a different body"},
                        422: {"description": "a bad field (named), an unknown dataset, or a refused template"}})
def submit_job(spec: JobSpec, response: Response, request: Request,
               idempotency_key: str | None = Header(None, max_length=200),
               catalog: Catalog = Depends(get_catalog), dispatcher=Depends(get_dispatcher)) -> dict:
    from attribution_worker.jobs import job_id_for, prepare_job

    _validate(spec)
    body = spec.model_dump()
    mine = _comparable(body)
    known = request.app.state.idempotency_keys
    if idempotency_key:
        # A key names one job for good: its (job id, spec) is cached after the first catalog lookup.
        if idempotency_key not in known:
            previous = catalog.idempotency_key(idempotency_key)
            if previous is not None:
                known[idempotency_key] = (previous[0], _comparable(previous[1]))
        if idempotency_key in known:
            return _replay(catalog, idempotency_key, known[idempotency_key], mine, response)
    try:
        job_id = job_id_for(catalog, spec)
        job = existing = catalog.get_job(job_id)  # the read cache answers while the catalog is unchanged
        if existing is None or existing["status"] == "failed":
            # Creating takes the lock and looks again: concurrent submits of one new spec create it once.
            # Finding an existing job does not: at 32 clients, submits that waited on one another's reads
            # here were the slowest requests while the catalog changed (every read then opens the file).
            with request.app.state.submit_lock:
                existing = catalog.get_job(job_id)
                if existing is None or existing["status"] == "failed":
                    job, _, _ = prepare_job(catalog, spec, None, idempotency_key=idempotency_key)
                else:
                    job = existing
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if idempotency_key and job.get("idempotency_key") != idempotency_key:
        # the spec named a job another key (or none) created: the key now names that job, for good
        bound = known.setdefault(idempotency_key, (job["job_id"], mine))
        if bound != (job["job_id"], mine):  # a concurrent request bound the key first
            return _replay(catalog, idempotency_key, bound, mine, response)
        request.app.state.key_binder.bind(idempotency_key, job["job_id"], body)
    response.headers["Location"] = f"/v1/jobs/{job['job_id']}"
    if existing is None:
        dispatcher.wake()
    elif existing["status"] == "failed":
        dispatcher.resume(job["job_id"])
    else:
        response.status_code = 200
    return _job_body(catalog, job)


@router.get("", response_model=None, dependencies=[Depends(require("read"))])
def list_jobs(status: str | None = Query(None, description=f"One of {', '.join(JOB_STATES)}."),
              limit: int = Query(50, ge=1, description="Items per page (at most page_limit_max)."),
              after: str | None = Query(None, description="The `next` cursor of the previous page."),
              catalog: Catalog = Depends(get_catalog), settings=Depends(get_settings)) -> dict:
    """Jobs oldest first, in pages: follow `next` until it is null."""
    if status is not None and status not in JOB_STATES:
        raise HTTPException(422, f"status={status!r}: use one of {', '.join(JOB_STATES)}")
    limit = min(limit, settings.page_limit_max)
    jobs = sorted(catalog.jobs(status), key=lambda j: (j["created_at"], j["job_id"]))
    start = 0
    if after:
        ids = [j["job_id"] for j in jobs]
        if after not in ids:
            raise HTTPException(422, f"after={after!r} is not a job in this listing: pass the `next` of the previous page")
        start = ids.index(after) + 1
    page = jobs[start:start + limit]
    more = start + limit < len(jobs)
    return {"items": [jsonable({k: j.get(k) for k in _SUMMARY if k in j}) for j in page],
            "next": page[-1]["job_id"] if more and page else None}


@router.get("/{job_id}", response_model=None, dependencies=[Depends(require("read"))], responses=_404)
def get_job(job_id: str, catalog: Catalog = Depends(get_catalog)) -> dict:
    """Status, rows total/done/failed, shards, timings and message."""
    return _job_body(catalog, _found(catalog, job_id), shards=True)


@router.post("/{job_id}/cancel", response_model=None, dependencies=[Depends(require("submit"))],
             responses={**_404, 409: {"description": "the job already ended"}})
def cancel_job(job_id: str, catalog: Catalog = Depends(get_catalog), dispatcher=Depends(get_dispatcher)) -> dict:
    """Stop a job: committed shards stay; the job ends `cancelled` (via `cancelling` while its driver stops)."""
    job = _found(catalog, job_id)
    if job["status"] in TERMINAL_STATES:
        raise HTTPException(409, f"job {job_id} already ended {job['status']}; nothing to cancel")
    if job["status"] == "cancelling":
        return _job_body(catalog, job)
    try:
        return _job_body(catalog, dispatcher.cancel(job_id))
    except JobStateError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/{job_id}/events", dependencies=[Depends(require("read"))], responses=_404,
            response_class=StreamingResponse)
async def job_events(job_id: str, request: Request, catalog: Catalog = Depends(get_catalog),
                     settings=Depends(get_settings)):
    """Server-sent events: an `event: job` with the job's progress on every change, ending after a terminal state."""
    await asyncio.to_thread(_found, catalog, job_id)

    async def stream():
        last, last_sent = None, time.monotonic()
        while True:
            job = await asyncio.to_thread(catalog.get_job, job_id)
            body = jsonable({k: job.get(k) for k in _SUMMARY})
            state = tuple(body[k] for k in ("status", "done_rows", "error_rows", "shards_done", "message"))
            if state != last:
                last, last_sent = state, time.monotonic()
                yield f"event: job\ndata: {json.dumps(body)}\n\n"
            if job["status"] in TERMINAL_STATES:
                return
            if await request.is_disconnected():
                return
            if time.monotonic() - last_sent > settings.events_heartbeat_s:
                last_sent = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(settings.events_poll_s)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
