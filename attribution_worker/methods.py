"""Attribution methods: per-token scores of log p(answer | input) for one padded batch.

f(E) = teacher.logp(E, mask, answer) is log p of the answer tokens, teacher-forced and summed;
E [B, L, D] are the encoder's input embeddings. Gradient methods take ONE backward per batch,
torch.autograd.grad(f(E).sum(), E): rows do not interact, so row b of the result is d f_b / d E_b.

  saliency              ||d f / d e_t||_2                                   (Simonyan et al. 2014)
  input_x_gradient      |(d f / d e_t) . e_t|                               (Shrikumar et al. 2016)
  integrated_gradients  |sum_d (e_t - b_t)_d * integral_0^1 d f(b + a(E - b)) / d e_t,d da|
                        (Sundararajan et al. 2017), Gauss-Legendre nodes as in Captum; the
                        scaled copies run in passes sized by the token budget (ig_steps_per_pass).
                        Also returns f(x), f(baseline) and the signed attribution sum, for the
                        completeness error |sum - (f(x) - f(b))| / |f(x) - f(b)|.
                        The baseline b replaces only attributable (unit) tokens, by zeros or by the
                        pad embedding; template and special tokens keep their embeddings.
  occlusion             f(E) - f(E with the word's tokens replaced by the mask id), per word;
                        forward passes only, batched by the token budget (Zeiler & Fergus 2014).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .batching import chunks, length_batches, pad
from .constants import BASELINES, GRADIENT_METHODS, METHODS  # noqa: F401  (re-exported)


def gauss_legendre(n_steps: int) -> tuple[list[float], list[float]]:
    """IG nodes in [0, 1] and their weights (Captum's `gausslegendre`)."""
    x, w = np.polynomial.legendre.leggauss(n_steps)
    return list(0.5 * (x + 1)), list(0.5 * w)


def baseline_embeds(teacher, embeds: torch.Tensor, unit_mask: torch.Tensor, kind: str) -> torch.Tensor:
    """IG baseline: `embeds` with unit tokens replaced by zeros (kind="zero") or the pad embedding."""
    if kind == "zero":
        fill = torch.zeros_like(embeds)
    elif kind == "pad":
        pad_row = teacher.embed(torch.tensor([[teacher.pad_id]], device=embeds.device))
        fill = pad_row.expand_as(embeds)
    else:
        raise ValueError(f"baseline={kind!r}: use one of {', '.join(BASELINES)}")
    keep = unit_mask.unsqueeze(-1).to(embeds.dtype)
    return fill * keep + embeds * (1 - keep)


@dataclass
class GradientResult:
    """One gradient pass over a batch of B rows.

    scores [B, L] float32 (zero where unit_mask is False); logp [B] = f(x), log p(answer) on the
    unmodified input (None when the method did not compute it). Integrated gradients also fills
    attribution_sum [B] (signed attributions summed over tokens), baseline_logp [B] = f(baseline)
    and steps [B] (the steps each row's scores come from).
    """

    scores: torch.Tensor
    logp: torch.Tensor | None
    attribution_sum: torch.Tensor | None = None
    baseline_logp: torch.Tensor | None = None
    steps: list[int] = field(default_factory=list)

    def completeness_error(self) -> np.ndarray:
        """|sum of attributions - (f(x) - f(b))| / |f(x) - f(b)| per row; nan where f(x) == f(b)."""
        delta = (self.logp - self.baseline_logp).double().cpu().numpy()
        total = self.attribution_sum.double().cpu().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.abs(delta) > 1e-12, np.abs(total - delta) / np.abs(delta), np.nan)

    def replace_rows(self, rows: list[int], other: "GradientResult") -> None:
        """Take rows `rows` (in order) from `other`, a result over just those rows."""
        index = torch.tensor(rows, device=self.scores.device)
        self.scores = self.scores.index_copy(0, index, other.scores.to(self.scores.device))
        for name in ("logp", "attribution_sum", "baseline_logp"):
            mine = getattr(self, name)
            setattr(self, name, mine.index_copy(0, index.to(mine.device), getattr(other, name).to(mine.device)))
        for j, r in enumerate(rows):
            self.steps[r] = other.steps[j]


def ig_steps_per_pass(rows: int, width: int, token_budget: int, requested: int | None = None) -> int:
    """Scaled copies per IG pass so that copies x rows x width stays within the token budget (at least 1)."""
    fits = max(1, token_budget // max(1, rows * width))
    return min(fits, requested) if requested else fits


def gradient_scores(
    teacher, method: str, input_ids: torch.Tensor, attention_mask: torch.Tensor,
    ans_ids: torch.Tensor, ans_mask: torch.Tensor, unit_mask: torch.Tensor, *,
    n_steps: int = 16, baseline: str = "zero", steps_per_pass: int | None = None, token_budget: int | None = None,
) -> GradientResult:
    """Per-token scores of one padded batch (module docstring). Integrated gradients runs its n_steps
    scaled copies in passes of ig_steps_per_pass(...) copies: never more than token_budget tokens
    (rows x (prompt + answer) x copies) at once; token_budget None: all steps in one pass."""
    dev = teacher.device
    input_ids, attention_mask = input_ids.to(dev), attention_mask.to(dev)
    ans_ids, ans_mask, unit_mask = ans_ids.to(dev), ans_mask.to(dev), unit_mask.to(dev)
    embeds = teacher.embed(input_ids)
    b = embeds.shape[0]
    if method in ("saliency", "input_x_gradient"):
        x = embeds.clone().requires_grad_(True)
        logp = teacher.logp(x, attention_mask, ans_ids, ans_mask)
        (grad,) = torch.autograd.grad(logp.sum(), x)
        grad, logp = grad.float(), logp.detach()
        scores = grad.norm(dim=-1) if method == "saliency" else (grad * embeds).sum(-1).abs()
        return GradientResult(scores.float() * unit_mask.float(), logp)
    if method != "integrated_gradients":
        raise ValueError(f"method={method!r} is not a gradient method ({', '.join(GRADIENT_METHODS)})")
    base = baseline_embeds(teacher, embeds, unit_mask, baseline)
    diff = embeds - base
    with torch.no_grad():  # f(x) and f(baseline): the completeness check's two ends
        ends = teacher.logp(torch.cat([embeds, base]), attention_mask.repeat(2, 1), ans_ids.repeat(2, 1),
                            ans_mask.repeat(2, 1)).detach()
    alphas, weights = gauss_legendre(n_steps)
    width = input_ids.shape[1] + ans_ids.shape[1]
    per_pass = ig_steps_per_pass(b, width, token_budget, steps_per_pass) if token_budget else (steps_per_pass or n_steps)
    total = torch.zeros_like(embeds)
    for part in chunks(n_steps, per_pass):
        a = torch.tensor([alphas[i] for i in part], device=dev, dtype=embeds.dtype).view(-1, 1, 1, 1)
        w = torch.tensor([weights[i] for i in part], device=dev, dtype=embeds.dtype).view(-1, 1, 1, 1)
        m = len(part)
        x = (base.unsqueeze(0) + a * diff.unsqueeze(0)).reshape(m * b, *embeds.shape[1:]).requires_grad_(True)
        lp = teacher.logp(x, attention_mask.repeat(m, 1), ans_ids.repeat(m, 1), ans_mask.repeat(m, 1))
        (grad,) = torch.autograd.grad(lp.sum(), x)
        total += (grad.float().view(m, b, *embeds.shape[1:]) * w).sum(0)
    signed = (diff * total).sum(-1) * unit_mask.float()
    return GradientResult(signed.abs(), ends[:b], attribution_sum=signed.sum(1), baseline_logp=ends[b:],
                          steps=[n_steps] * b)


def score_sequences(teacher, seqs: list[list[int]], answers: list[list[int]], token_budget: int) -> np.ndarray:
    """log p(answers[i] | seqs[i]) for every pair, forward only, batched within the token budget."""
    out = np.zeros(len(seqs), dtype=np.float64)
    lengths = [len(s) + len(a) for s, a in zip(seqs, answers)]
    for batch in length_batches(lengths, token_budget):
        ids, mask = pad([seqs[i] for i in batch], teacher.pad_id, teacher.padding_side, teacher.device)
        ans_ids, ans_mask = pad([answers[i] for i in batch], teacher.pad_id, "right", teacher.device)
        with torch.no_grad():
            lp = teacher.logp(teacher.embed(ids), mask, ans_ids, ans_mask)
        out[batch] = lp.double().cpu().numpy()
    return out


def occlusion_scores(
    teacher, seqs: list[list[int]], units: list, answers: list[list[int]], full_logp, token_budget: int,
) -> list[np.ndarray]:
    """Per-unit drop in log p(answer) when the unit's tokens are replaced by teacher.mask_id."""
    variants, answer_of, owner = [], [], []
    for i, (seq, u) in enumerate(zip(seqs, units)):
        for w in range(len(u.words)):
            masked = list(seq)
            for t in u.tokens_of(w):
                masked[t] = teacher.mask_id
            variants.append(masked)
            answer_of.append(answers[i])
            owner.append(i)
    lp = score_sequences(teacher, variants, answer_of, token_budget) if variants else np.zeros(0)
    result = [np.zeros(len(u.words), dtype=np.float64) for u in units]
    pos = [0] * len(units)
    for v, i in enumerate(owner):
        result[i][pos[i]] = full_logp[i] - lp[v]
        pos[i] += 1
    return [r.astype(np.float32) for r in result]
