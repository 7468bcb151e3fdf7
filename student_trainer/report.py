"""metrics.json -> report.html with PNG learning curves (matplotlib, Agg backend).

    write_report(run_dir, metrics, histories)   # histories: {"student": [FitResult.history, ...], "baseline": [...]}

The table compares the rationale student, the label-only baseline (when trained) and the teacher
(accuracy of its stored answers against gold) on validation and test: mean +- std over seeds.
"""
from __future__ import annotations

import html
from pathlib import Path

from storage.parquet_io import atomic_write


def _fmt(stat: dict | None) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{stat['mean']:.4f} &plusmn; {stat['std']:.4f}" if stat.get("n", 1) > 1 else f"{stat['mean']:.4f}"


def plot_curves(histories: dict[str, list[list[dict]]], path: Path) -> None:
    """Two panels: training loss per step, validation accuracy per evaluation; one line per variant x seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for variant, runs in histories.items():
        for i, hist in enumerate(runs):
            steps = [h["step"] for h in hist]
            label = f"{variant} seed#{i}"
            ax_loss.plot(steps, [h.get("label_loss", h["loss"]) for h in hist], lw=0.8, label=label)
            ev = [h for h in hist if "val_accuracy" in h]
            ax_acc.plot([h["step"] for h in ev], [h["val_accuracy"] for h in ev], marker="o", ms=3, label=label)
    ax_loss.set(title="training label loss", xlabel="step", ylabel="cross-entropy")
    ax_acc.set(title="validation accuracy", xlabel="step", ylabel="accuracy")
    ax_acc.legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


def render_html(metrics: dict, curves_name: str = "curves.png") -> str:
    rows = []
    for name, v in metrics["variants"].items():
        label = "student (rationales, a={})".format(v["label_weight"]) if name == "student" else "baseline (label-only)"
        rows.append((label, _fmt(v.get("val_accuracy")), _fmt(v.get("test_accuracy"))))
    teacher = metrics.get("teacher") or {}
    rows.append(("teacher (stored answers)", _fmt({"mean": teacher.get("val_accuracy"), "n": 1}),
                 _fmt({"mean": teacher.get("test_accuracy"), "n": 1})))
    table = "\n".join(f"<tr><td>{html.escape(a)}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    counts = html.escape(", ".join(f"{k}={v}" for k, v in metrics.get("counts", {}).items()))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>salient run {html.escape(metrics['run_id'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 10px}}</style>
</head><body><h1>Run {html.escape(metrics['run_id'])}</h1>
<p>dataset <b>{html.escape(metrics['dataset'])}</b>, student <b>{html.escape(metrics['student'])}</b>,
scorer {html.escape(metrics['scorer'])}, seeds {metrics['seeds']}, validation: {html.escape(metrics['val_source'])}</p>
<table><tr><th>model</th><th>validation accuracy</th><th>test accuracy</th></tr>
{table}</table>
<p>rows: {counts}</p>
<img src="{curves_name}" alt="learning curves"></body></html>
"""


def write_report(run_dir: Path, metrics: dict, histories: dict[str, list[list[dict]]]) -> Path:
    plot_curves(histories, run_dir / "curves.png")
    path = run_dir / "report.html"
    with atomic_write(path, "w") as fh:  # readers see the old report or the new one, never half of one
        fh.write(render_html(metrics))
    return path
