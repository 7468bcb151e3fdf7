"""TeacherActor: one Ray actor holding one loaded teacher; attributes whole shards.

    actor = TeacherActor.options(num_gpus=1).remote(config_dict)     # GPU: uses cuda:0
    table = ray.get(actor.attribute_shard.remote(rows, dataset="cqa", split="train", job_id="j", shard_index=3))

The actor loads the teacher once (`AttributionEngine`) and turns each shard's dataset rows into a
RATIONALE_SCHEMA Arrow table with provenance filled in. It never touches the catalog or the store:
the driver writes and commits shards (one writer, STYLE.md 5). With a GPU reserved, Ray sets
CUDA_VISIBLE_DEVICES to that one GPU, so the actor's device is always cuda:0; on CPU the torch
thread count follows the CPUs the actor reserved. `nice` (setting actor_nice) lowers the actor's CPU
priority, so a REST service or driver on the same machine stays responsive while it works.
"""
from __future__ import annotations

import os

import ray


class _TeacherActor:
    def __init__(self, config: dict, num_threads: int | None = None, nice: int = 0):
        if nice > 0:  # before the teacher loads: that is the CPU-heavy start
            os.nice(nice)
        import torch

        from .engine import AttributionConfig, AttributionEngine

        config = dict(config)
        if config.get("device") is None:
            config["device"] = "cuda:0" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        if num_threads and config["device"] == "cpu":
            torch.set_num_threads(max(1, int(num_threads)))
        self.engine = AttributionEngine(AttributionConfig(**config))

    def pid(self) -> int:
        return os.getpid()

    def niceness(self) -> int:
        return os.nice(0)

    def cpu_seconds(self) -> float:
        """CPU time this actor process has used (all threads): for overhead measurements."""
        import time

        return time.process_time()

    def peak_rss_mb(self) -> float:
        """Peak resident memory of this actor process (MB, VmHWM): for the bounded-memory benchmark."""
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def attribute_shard(self, rows: list[dict], *, dataset: str, split: str | None, job_id: str, shard_index: int):
        """rows: dataset rows (example_id, input, target, choices, split) -> a RATIONALE_SCHEMA pyarrow.Table."""
        from .shard import attribute_shard

        return attribute_shard(self.engine, rows, dataset=dataset, split=split, job_id=job_id, shard_index=shard_index)


# max_restarts=0: the job runner restarts a dead actor itself, so it knows which shards to retry.
TeacherActor = ray.remote(max_restarts=0, max_task_retries=0)(_TeacherActor)
