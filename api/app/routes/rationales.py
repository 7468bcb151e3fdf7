"""`/v1/rationales/{dataset}/{example_id}` (JSON) and `.../view`, `/v1/jobs/{job_id}/view` (HTML)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse

from storage import Catalog

from ..deps import get_catalog, get_settings, require
from ..jsonable import jsonable
from ..rationales import faithfulness_summary, find_rationale, job_samples, marked_units
from ..views.render import job_page, rationale_page

router = APIRouter(prefix="/v1", tags=["rationales"])
_404 = {404: {"description": "no such rationale / job"}}


def _row(catalog: Catalog, dataset: str, example_id: str, job_id: str | None) -> dict:
    row = find_rationale(catalog, dataset, example_id, job_id)
    if row is None:
        raise HTTPException(404, f"no rationale for {dataset}/{example_id}"
                                 + (f" in job {job_id}" if job_id else "") + ": POST /v1/sql with "
                                 "`SELECT dataset, example_id FROM rationales LIMIT 10` lists some")
    return row


@router.get("/rationales/{dataset}/{example_id}", response_model=None, dependencies=[Depends(require("read"))],
            responses=_404)
def get_rationale(dataset: str, example_id: str, job_id: str | None = None,
                  catalog: Catalog = Depends(get_catalog)) -> dict:
    """The rationale row (newest job unless `job_id`), with `rationale_units`: indices of the marked units."""
    row = _row(catalog, dataset, example_id, job_id)
    row["rationale_units"] = sorted(marked_units(row))
    return jsonable(row)


@router.get("/rationales/{dataset}/{example_id}/view", dependencies=[Depends(require("read"))],
            response_class=HTMLResponse, responses=_404)
def view_rationale(dataset: str, example_id: str, job_id: str | None = None,
                   catalog: Catalog = Depends(get_catalog)) -> HTMLResponse:
    return HTMLResponse(rationale_page(_row(catalog, dataset, example_id, job_id)))


@router.get("/jobs/{job_id}/view", dependencies=[Depends(require("read"))], response_class=HTMLResponse,
            responses=_404)
def view_job(job_id: str, catalog: Catalog = Depends(get_catalog), settings=Depends(get_settings)) -> HTMLResponse:
    job = catalog.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}: GET /v1/jobs lists them")
    return HTMLResponse(job_page(job, faithfulness_summary(catalog, job_id),
                                 job_samples(catalog, job_id, settings.view_sample_rows)))
