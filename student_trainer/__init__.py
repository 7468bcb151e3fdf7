"""Student training (Distilling step-by-step, Hsieh et al. 2023) on salient's rationale shards.

    from student_trainer import TrainConfig, run_training, retrain
    run_training(catalog, TrainConfig(dataset="cqa", compare_baseline=True))

Modules: config (TrainConfig), data (rows -> examples), presets (students, tokenizers), train (the
loop), evaluate (exact match, SVAMP equations), report (HTML + PNG), registry (runs, promotion),
run (one run end to end), schedule (idempotent retrain, cron). Imports storage, never api/.
"""
from .config import TrainConfig
from .run import run_training
from .schedule import retrain

__all__ = ["TrainConfig", "run_training", "retrain"]
