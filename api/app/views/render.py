"""Self-contained HTML (inline CSS, no scripts, no external assets) for the saliency viewer.

heatmap(row): the row's input_text with each unit shaded by its score (orange, alpha = score / max
score) and the rationale units wrapped in `<mark class="rationale">`; text that is not a unit
(template, scaffolding, spaces) is shown plain.
"""
from __future__ import annotations

import math
from html import escape

from ..rationales import marked_units

_CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222;padding:0 1rem}
h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:2rem}
.heat{white-space:pre-wrap;border:1px solid #ddd;border-radius:6px;padding:.8rem;background:#fff;line-height:1.9}
.u{border-radius:3px;padding:1px 0}
mark.rationale{background:none;outline:2px solid #c2185b;border-radius:3px;font-weight:600;color:inherit}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
.meta td:first-child{font-weight:600;background:#fafafa}.err{color:#b00020}.legend span{padding:0 .4rem}
.small{color:#666;font-size:.85rem}
"""


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.4f}"
    return escape(str(v))


def heatmap(row: dict) -> str:
    text = row.get("input_text") or ""
    spans = row.get("spans") or []
    scores = [float(s) if s is not None and math.isfinite(float(s)) else 0.0 for s in (row.get("scores") or [])]
    top = max([abs(s) for s in scores] + [1e-12])
    marked = marked_units(row)
    out, pos = [], 0
    for i, span in enumerate(spans):
        start, end = int(span["start"]), int(span["end"])
        if start < pos or end > len(text):
            continue
        out.append(escape(text[pos:start]))
        score = scores[i] if i < len(scores) else 0.0
        alpha = min(1.0, abs(score) / top)
        unit = (f'<span class="u" style="background:rgba(255,140,0,{alpha:.3f})" '
                f'title="score {score:.4g}">{escape(text[start:end])}</span>')
        out.append(f'<mark class="rationale">{unit}</mark>' if i in marked else unit)
        pos = end
    out.append(escape(text[pos:]))
    return f'<div class="heat">{"".join(out)}</div>'


def _meta(row: dict) -> str:
    items = [("example", row.get("example_id")), ("dataset / split", f"{row.get('dataset')} / {row.get('split')}"),
             ("job", row.get("job_id")), ("teacher", row.get("teacher_model")), ("method", row.get("method")),
             ("teacher answer", row.get("teacher_output")), ("gold target", row.get("target_text")),
             ("teacher correct", row.get("teacher_correct")), ("rationale", row.get("rationale_text")),
             ("comprehensiveness", row.get("comprehensiveness")), ("sufficiency", row.get("sufficiency"))]
    body = "".join(f"<tr><td>{escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in items)
    err = f'<p class="err">error: {escape(row["error"])}</p>' if row.get("error") else ""
    return f'<table class="meta">{body}</table>{err}'


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<style>{_CSS}</style></head><body>{body}'
            '<p class="small">Shading: the unit\'s saliency score relative to the row\'s highest; '
            'outlined words: the rationale (top-k). Comprehensiveness: drop in the answer\'s probability without the '
            'rationale (higher = more faithful); sufficiency: drop with the rationale alone (lower = more sufficient); '
            'ERASER, DeYoung et al. 2020.</p>'
            '</body></html>')


def rationale_page(row: dict) -> str:
    title = f"{row.get('dataset')} / {row.get('example_id')}"
    return _page(title, f"<h1>Rationale: {escape(title)}</h1>{heatmap(row)}{_meta(row)}")


def job_page(job: dict, summary: dict, rows: list[dict]) -> str:
    head = [("status", job.get("status")), ("dataset / split", f"{job.get('dataset')} / {job.get('split') or 'every split'}"),
            ("rows done / total", f"{job.get('done_rows')} / {job.get('total_rows')}"),
            ("error rows", job.get("error_rows")), ("shards", f"{job.get('shards_done')} / {job.get('shards_total')}"),
            ("message", job.get("message"))]
    faith = [("attributed rows", summary.get("rows")), ("rows with errors", summary.get("error_rows")),
             ("mean comprehensiveness", summary.get("comprehensiveness")),
             ("mean sufficiency", summary.get("sufficiency")),
             ("gold overlap rate", summary.get("gold_overlap")), ("teacher accuracy", summary.get("teacher_accuracy"))]
    table = lambda items: '<table class="meta">' + "".join(  # noqa: E731
        f"<tr><td>{escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in items) + "</table>"
    samples = "".join(
        f"<h3>{escape(str(r['example_id']))} <span class='small'>answer {escape(str(r.get('teacher_output')))}"
        f" · gold {escape(str(r.get('target_text')))}</span></h3>{heatmap(r)}" for r in rows)
    body = (f"<h1>Job {escape(str(job.get('job_id')))}</h1>{table(head)}<h2>Faithfulness</h2>{table(faith)}"
            f"<h2>Sample heatmaps ({len(rows)})</h2>{samples or '<p>no attributed rows yet</p>'}")
    return _page(f"job {job.get('job_id')}", body)
