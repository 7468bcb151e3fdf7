"""`GET /v1/models` (the registry) and `POST /v1/retrain` (a retrain in its own process).

A retrain runs `student_trainer.schedule.retrain` in a child process (`python -m api.app.retrain_worker`),
so training never blocks the service. It is idempotent per data snapshot as `salient retrain` is: with
nothing committed since the last run with the same settings, the child records `skipped`. The service
also keeps one child per request body: posting the same body while it runs returns that child (200).
Its log and outcome land in `<store>/runs/_retrain/<retrain_id>.{log,json}`; `GET /v1/retrain/{id}` reads them.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from storage import Catalog

from ..deps import get_catalog, require
from ..jsonable import jsonable

router = APIRouter(prefix="/v1", tags=["models"])
_children: dict[str, subprocess.Popen] = {}
_children_lock = threading.Lock()


class RetrainRequest(BaseModel):
    dataset: str = Field(min_length=1, description="Dataset whose committed shards to train on.")
    config: dict = Field(default_factory=dict, description="Other TrainConfig fields (as `salient retrain` flags), "
                                                          "e.g. {\"steps\": 300, \"compare_baseline\": true}.")
    force: bool = Field(False, description="Train even when the data snapshot is unchanged.")


@router.get("/models", response_model=None, dependencies=[Depends(require("read"))])
def list_models(dataset: str | None = None, catalog: Catalog = Depends(get_catalog)) -> list[dict]:
    """Training runs, newest last; `current` marks the promoted run per (dataset, student)."""
    from student_trainer.registry import list_models as registry_models

    return jsonable(registry_models(catalog, dataset))


def _retrain_dir(catalog: Catalog):
    path = catalog.store.local_runs_dir / "_retrain"  # this service's bookkeeping: local even for an s3:// store
    path.mkdir(parents=True, exist_ok=True)
    return path


@router.post("/retrain", response_model=None, status_code=202, dependencies=[Depends(require("submit"))],
             responses={200: {"description": "the same retrain is already running"},
                        422: {"description": "a bad TrainConfig field (named)"}})
def retrain(body: RetrainRequest, request: Request, response: Response,
            catalog: Catalog = Depends(get_catalog)) -> dict:
    from student_trainer.config import TrainConfig

    try:
        cfg = TrainConfig.from_dict({**body.config, "dataset": body.dataset})
    except (TypeError, ValueError) as exc:
        raise HTTPException(422, f"config: {exc}") from None
    payload = json.dumps({"config": cfg.to_dict(), "force": body.force}, sort_keys=True, default=str)
    retrain_id = "retrain-" + hashlib.sha1(payload.encode()).hexdigest()[:12]
    folder = _retrain_dir(catalog)
    with _children_lock:
        child = _children.get(retrain_id)
        if child is not None and child.poll() is None:
            response.status_code = 200
            return {"retrain_id": retrain_id, "status": "running", "pid": child.pid}
        (folder / f"{retrain_id}.json").unlink(missing_ok=True)
        with open(folder / f"{retrain_id}.log", "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "api.app.retrain_worker", "--store", str(catalog.store.root),
                 "--retrain-id", retrain_id, "--request", payload],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        _children[retrain_id] = child
    response.headers["Location"] = f"/v1/retrain/{retrain_id}"
    return {"retrain_id": retrain_id, "status": "running", "pid": child.pid}


@router.get("/retrain/{retrain_id}", response_model=None, dependencies=[Depends(require("read"))],
            responses={404: {"description": "no such retrain"}})
def retrain_status(retrain_id: str, catalog: Catalog = Depends(get_catalog)) -> dict:
    """running, or the child's outcome (`trained` with the run, `skipped` with the reason, `failed`)."""
    if not re.fullmatch(r"retrain-[0-9a-f]{12}", retrain_id):
        raise HTTPException(404, f"no retrain {retrain_id!r}: ids look like retrain-0123456789ab")
    folder = _retrain_dir(catalog)
    outcome, log = folder / f"{retrain_id}.json", folder / f"{retrain_id}.log"
    child = _children.get(retrain_id)
    if child is not None and child.poll() is None:
        return {"retrain_id": retrain_id, "status": "running", "pid": child.pid}
    if outcome.is_file():
        return {"retrain_id": retrain_id, **json.loads(outcome.read_text())}
    if log.is_file():
        tail = log.read_text(errors="replace")[-2000:]
        return {"retrain_id": retrain_id, "status": "failed", "log_tail": tail}
    raise HTTPException(404, f"no retrain {retrain_id!r}")
