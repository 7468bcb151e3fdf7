"""`/v1/datasets`: upload (multipart, streamed to disk) and list datasets.

    curl -H "Authorization: Bearer $TOKEN" -F name=mine -F file=@data.jsonl -F split=train \
         http://127.0.0.1:8000/v1/datasets

The body streams through Starlette's multipart parser into a spooled temporary file (at most 1 MiB
in memory, the rest on disk), capped by `max_upload_bytes` (middleware.BodyLimit). The file is then
copied into `<store>/tmp/` under its own name and handed to `storage.ingest.ingest`, which parses
and validates every record before writing anything: a malformed record gets 422 naming
`<file name>:<line>` and the store is unchanged.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse

from storage import Catalog
from storage.ingest import FORMATS, IngestOptions, ingest

from ..deps import get_catalog, require

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
_SAFE_NAME = "upload"


@router.post("", status_code=201, dependencies=[Depends(require("submit"))],
             responses={200: {"description": "the same content is already the active version"},
                        413: {"description": "over max_upload_bytes"},
                        422: {"description": "a malformed record (the message names file:line) or bad options"}})
def upload_dataset(
    name: str = Form(..., description="Dataset name (letters, digits, '_', '.', '-')."),
    file: UploadFile = File(..., description="A JSONL, CSV or Parquet file."),
    format: str = Form("auto", description=f"One of {', '.join(FORMATS)} (auto: by the file name's extension)."),
    split: str | None = Form(None, description="Split name of every row (default train)."),
    id_field: str | None = Form(None), input_field: str | None = Form(None),
    input_template: str | None = Form(None, description="Plain `{field}` substitution, e.g. `{question} {context}` (storage.templates)."),
    target_field: str | None = Form(None), choices_field: str | None = Form(None),
    catalog: Catalog = Depends(get_catalog),
):
    filename = Path(file.filename or _SAFE_NAME).name or _SAFE_NAME
    try:
        opts = IngestOptions(format=format, split=split or None, id_field=id_field or None,
                             input_field=input_field or None, input_template=input_template or None,
                             target_field=target_field or None, choices_field=choices_field or None)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    tmp_root = catalog.store.local_dir / "tmp"  # the root itself, or the writer's disk for an s3:// store
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root, prefix="upload-") as tmp:
        path = Path(tmp) / filename
        with open(path, "wb") as out:
            shutil.copyfileobj(file.file, out, 1024 * 1024)
        try:
            results = ingest(catalog, name, path, opts)
        except (ValueError, FileNotFoundError) as exc:
            raise HTTPException(422, str(exc).replace(str(path), filename).replace(tmp + "/", "")) from None
    body = [{"name": r.name, "split": r.split, "version": r.version, "rows": r.rows, "status": r.status,
             "notes": "; ".join(r.notes), "path": r.path} for r in results]
    if all(r.status == "unchanged" for r in results):
        return JSONResponse(body, status_code=200)
    return body


@router.get("", response_model=None, dependencies=[Depends(require("read"))])
def list_datasets(all: bool = False, catalog: Catalog = Depends(get_catalog)) -> list[dict]:
    """One row per (name, split) version; `all=true` includes superseded versions."""
    return [r for r in catalog.datasets() if all or r["active"]]


@router.get("/{name}", response_model=None, dependencies=[Depends(require("read"))],
            responses={404: {"description": "no such dataset"}})
def get_dataset(name: str, catalog: Catalog = Depends(get_catalog)) -> dict:
    """The dataset's versions and, per active part, its columns."""
    import pyarrow.parquet as pq

    from storage.objects import parquet_source

    versions = [r for r in catalog.datasets() if r["name"] == name]
    if not versions:
        raise HTTPException(404, f"no dataset {name!r}: GET /v1/datasets lists them, POST /v1/datasets adds one")
    for r in versions:
        if r["active"]:
            schema = pq.read_schema(parquet_source(catalog.store.absolute(r["path"])))
            r["columns"] = [{"name": f.name, "type": str(f.type)} for f in schema]
    return {"name": name, "versions": versions}
