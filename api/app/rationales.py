"""Reading rationale rows for the viewer: one example, a job's samples, a job's faithfulness summary.

Rows come from the catalog's `rationales` view (every committed shard); `marked_units(row)` says which
units are the rationale (the top-k by score, as the engine picked them: attribution_worker.units.top_k).
"""
from __future__ import annotations

from storage import Catalog

_COLUMNS = ("example_id, dataset, split, job_id, shard_index, input_text, target_text, teacher_model, method, "
            "teacher_output, teacher_correct, tokens, spans, scores, rationale, rationale_text, error, created_at, "
            "teacher_logprob, comprehensiveness, sufficiency, gold_overlap")


def find_rationale(catalog: Catalog, dataset: str, example_id: str, job_id: str | None = None) -> dict | None:
    """The newest rationale row of (dataset, example_id), or of that job when job_id is given."""
    sql = f"SELECT {_COLUMNS} FROM rationales WHERE dataset = ? AND example_id = ?"
    params = [dataset, example_id]
    if job_id:
        sql += " AND job_id = ?"
        params.append(job_id)
    rows = catalog.query(sql + " ORDER BY created_at DESC LIMIT 1", params)
    return rows[0] if rows else None


def job_samples(catalog: Catalog, job_id: str, n: int) -> list[dict]:
    return catalog.query(f"SELECT {_COLUMNS} FROM rationales WHERE job_id = ? AND error IS NULL "
                         "ORDER BY shard_index, example_id LIMIT ?", [job_id, n])


def faithfulness_summary(catalog: Catalog, job_id: str) -> dict:
    """Means over the job's attributed rows (ERASER comprehensiveness / sufficiency; DeYoung et al. 2020)."""
    return catalog.query(
        "SELECT count(*) AS rows, count(error) AS error_rows, avg(comprehensiveness) AS comprehensiveness, "
        "avg(sufficiency) AS sufficiency, avg(gold_overlap::INT) AS gold_overlap, "
        "avg(teacher_correct::INT) AS teacher_accuracy FROM rationales WHERE job_id = ?", [job_id])[0]


def marked_units(row: dict) -> set[int]:
    """Indices of the units that form the row's rationale."""
    from attribution_worker.units import top_k

    tokens, scores, rationale = row.get("tokens") or [], row.get("scores") or [], row.get("rationale") or []
    if not tokens or not rationale or len(scores) != len(tokens):
        return set()
    picked = top_k(scores, len(rationale))
    if [tokens[i] for i in picked] == list(rationale):
        return set(picked)
    out, want = set(), list(rationale)  # fallback: the rationale words in input order
    for i, tok in enumerate(tokens):
        if want and tok == want[0]:
            out.add(i)
            want.pop(0)
    return out
