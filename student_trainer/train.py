"""The training loop: one student, one seed, multi-task as in Distilling step-by-step.

    result = fit(cfg, data, tokenizer, seed=0, label_weight=0.5, work_dir=run_dir / "work" / "student-seed0")
    result.val_accuracy, result.test_accuracy, result.history, result.model

Loss (Hsieh et al., "Distilling step-by-step", ACL Findings 2023, eq. 3):
    L = a * L_label + (1 - a) * L_rationale
    L_label     = CE(student("predict: " + x), label)      token-mean over the batch, labels [B, T_l]
    L_rationale = CE(student("explain: " + x), rationale)  token-mean over rows that have a rationale
a = 1 is plain (label-only) fine-tuning: the baseline skips the explain: forward entirely.

Data order: step s uses rows perm_e[j mod n] for j in [s*B, (s+1)*B), e = j // n, where perm_e is a
numpy permutation seeded by (seed, e). The batch of a step depends only on (seed, step), so the
rationale student and its baseline see identical rows in identical order, and a resumed run sees
exactly what an uninterrupted one would. Checkpoints (model, AdamW, schedule, torch/numpy RNG,
history, best weights, early-stopping counter) are written every `checkpoint_every` steps to a temp
file and renamed; `fit` resumes from `work_dir/checkpoint.pt` when it exists.
AdamW; warm-up then linear / cosine / constant LR; global-norm gradient clipping; greedy-decoding
validation accuracy every `eval_every` steps; early stopping on it (`patience`); the best weights win.
On CUDA the forward runs under bf16 autocast (dtype auto/bf16); on the CPU in fp32.
"""
from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from storage.parquet_io import atomic_write

from .config import TrainConfig
from .data import Data, Example
from .evaluate import accuracy
from .students import student_kind


class Interrupted(RuntimeError):
    """Raised by the `stop_after_step` test hook: training stopped as if the process were killed."""


@dataclass
class FitResult:
    seed: int
    label_weight: float
    kd_weight: float
    steps_done: int
    best_step: int
    val_accuracy: float
    test_accuracy: float | None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False
    model: object = None
    resumed_from: int | None = None

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("model", "history")}


def pick_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is visible; use --device cpu")
        return torch.device("cuda")
    return torch.device("cpu")


def autocast_for(cfg: TrainConfig, device: torch.device):
    if device.type == "cuda" and cfg.dtype in ("auto", "bf16"):
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def batch_indices(seed: int, step: int, batch_size: int, n: int) -> list[int]:
    """Row indices of step `step` (0-based): a function of (seed, step) only (see module docstring)."""
    out, perms = [], {}
    for j in range(step * batch_size, (step + 1) * batch_size):
        epoch = j // n
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(int(perms[epoch][j % n]))
    return out


def batch_digest(batch: list[Example]) -> str:
    """Short hash of a batch's example ids in order (recorded per step: the baseline check compares them)."""
    import hashlib

    return hashlib.sha256("\n".join(e.example_id for e in batch).encode()).hexdigest()[:12]


def lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        if cfg.schedule == "linear":
            return max(0.0, 1.0 - progress)
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0
    return f


def encode_pairs(tokenizer, inputs: list[str], targets: list[str], cfg: TrainConfig, device):
    """(input ids [B, T], attention mask [B, T], label ids [B, T_l] with -100 at padding).

    A BERT tokenizer starts every target with [CLS]; the encoder-decoder student's decoder starts from
    [CLS] already (decoder_start_token_id), so that leading [CLS] is dropped from the labels.
    """
    enc = tokenizer(inputs, truncation=True, max_length=cfg.max_input_tokens, padding=True, return_tensors="pt")
    lab = tokenizer(text_target=targets, truncation=True, max_length=cfg.max_target_tokens, padding=True,
                    return_tensors="pt")["input_ids"]
    cls = getattr(tokenizer, "cls_token_id", None)
    if cls is not None and lab.shape[1] > 1 and bool((lab[:, 0] == cls).all()):
        lab = lab[:, 1:].clone()
    lab[lab == tokenizer.pad_token_id] = -100
    return enc["input_ids"].to(device), enc["attention_mask"].to(device), lab.to(device)


def task_loss(model, tokenizer, inputs: list[str], targets: list[str], cfg: TrainConfig, device) -> torch.Tensor:
    """Token-mean cross-entropy of `targets` given `inputs` (teacher forcing). inputs/targets: B strings."""
    ids, mask, labels = encode_pairs(tokenizer, inputs, targets, cfg, device)
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss


def step_loss(model, tokenizer, batch: list[Example], a: float, cfg: TrainConfig, device) -> tuple[torch.Tensor, dict]:
    """a * L_label + (1 - a) * L_rationale for one batch; returns (loss, {"label_loss", "rationale_loss"})."""
    label_loss = task_loss(model, tokenizer, [e.predict_input for e in batch], [e.label for e in batch], cfg, device)
    parts = {"label_loss": float(label_loss.detach())}
    with_rationale = [e for e in batch if e.rationale]
    if a >= 1.0:
        return label_loss, parts
    if not with_rationale:  # the label term keeps its weight a: a batch without rationales is not a baseline step
        return a * label_loss, parts
    rationale_loss = task_loss(model, tokenizer, [e.explain_input for e in with_rationale],
                               [e.rationale for e in with_rationale], cfg, device)
    parts["rationale_loss"] = float(rationale_loss.detach())
    return a * label_loss + (1.0 - a) * rationale_loss, parts


def _save_atomic(obj, path: Path) -> None:
    with atomic_write(path) as fh:
        torch.save(obj, fh)


def evaluate_split(kind, model, examples: list[Example], cfg: TrainConfig, device, autocast) -> float:
    preds = kind.predict(model, examples, device, autocast)
    return accuracy(preds, [e.gold for e in examples], cfg.resolved_scorer)


def fit(cfg: TrainConfig, data: Data, tokenizer, *, seed: int, label_weight: float, work_dir: Path,
        kd_weight: float = 0.0, stop_after_step: int | None = None, desc: str = "train") -> FitResult:
    """Train one student (resuming from work_dir/checkpoint.pt when present); return its FitResult.

    The student's kind (students.student_kind: seq2seq presets, encdec, extractive) builds the model,
    computes the batch loss a * [(1 - w) CE + w KD] + (1 - a) L_rationale with a = label_weight and
    w = kd_weight, and answers for validation / test.

    stop_after_step: test hook -- raise Interrupted right after that step (1-based) as a kill would,
    without writing anything more than the regular checkpoints already written.
    """
    from tqdm.auto import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg)
    autocast = autocast_for(cfg, device)
    work_dir = Path(work_dir)
    ckpt_path = work_dir / "checkpoint.pt"
    random.seed(seed)
    np.random.seed(seed)
    kind = student_kind(cfg, tokenizer, data)
    model = kind.build(seed).to(device)
    model.train()
    # fused: one kernel for the whole update (a 3-layer MiniLM step 20% faster on 2 CPU cores; the same update
    # rule, not bit for bit). A checkpoint from before resumes with the setting it was saved with.
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=device.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    torch.manual_seed(seed)
    state = {"step": 0, "history": [], "best_acc": -1.0, "best_step": 0, "bad_evals": 0, "stopped_early": False}
    best_weights = None
    resumed_from = None
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"])
        state = ckpt["state"]
        best_weights = ckpt["best_weights"]
        resumed_from = state["step"]
    n = len(data.train)
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=state["step"], desc=desc, disable=not cfg.progress, leave=False)
    while state["step"] < cfg.steps and not state["stopped_early"]:
        step = state["step"]
        batch = [data.train[i] for i in batch_indices(seed, step, cfg.batch_size, n)]
        with autocast():
            loss, parts = kind.loss(model, batch, label_weight, kd_weight, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        state["step"] = step + 1
        record = {"step": state["step"], "loss": float(loss.detach()), "lr": sched.get_last_lr()[0], **parts,
                  "rows": batch_digest(batch)}
        if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
            val_loss, preds = kind.validate(model, data.val, device, autocast)
            acc = accuracy(preds, [e.gold for e in data.val], cfg.resolved_scorer)
            record.update(val_label_loss=val_loss, val_accuracy=acc)
            if acc > state["best_acc"]:
                state.update(best_acc=acc, best_step=state["step"], bad_evals=0)
                best_weights = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
            else:
                state["bad_evals"] += 1
                if cfg.patience and state["bad_evals"] >= cfg.patience:
                    state["stopped_early"] = True
            bar.set_postfix(loss=f"{record['loss']:.3f}", val_acc=f"{acc:.3f}")
        state["history"].append(record)
        bar.update(1)
        if state["step"] % cfg.checkpoint_every == 0 and state["step"] < cfg.steps:
            _save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                          "torch_rng": torch.get_rng_state(),
                          "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                          "state": copy.deepcopy(state), "best_weights": best_weights}, ckpt_path)
        if stop_after_step is not None and state["step"] >= stop_after_step:
            bar.close()
            raise Interrupted(f"stopped after step {state['step']} (test hook)")
    bar.close()
    if best_weights is not None:
        model.load_state_dict(best_weights)
    test_acc = evaluate_split(kind, model, data.test, cfg, device, autocast) if data.test else None
    ckpt_path.unlink(missing_ok=True)  # finished: the model is saved by the registry, not as a checkpoint
    return FitResult(seed=seed, label_weight=label_weight, kd_weight=kd_weight, steps_done=state["step"], best_step=state["best_step"],
                     val_accuracy=state["best_acc"], test_accuracy=test_acc, history=state["history"],
                     seconds=time.perf_counter() - t0, stopped_early=state["stopped_early"],
                     model=model.to("cpu"), resumed_from=resumed_from)


def task_loss_eval(model, tokenizer, examples: list[Example], cfg: TrainConfig, device, autocast) -> float:
    """Mean label loss (predict: task) over `examples`, in eval mode, without gradients."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad(), autocast():
            for i in range(0, len(examples), cfg.eval_batch_size):
                chunk = examples[i:i + cfg.eval_batch_size]
                loss = task_loss(model, tokenizer, [e.predict_input for e in chunk], [e.gold for e in chunk], cfg, device)
                total += float(loss) * len(chunk)
                count += len(chunk)
    finally:
        model.train(was)
    return total / max(1, count)
