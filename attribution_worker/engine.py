"""The attribution engine: teacher answers, a score for every input word, the top-k rationale.

    from attribution_worker.engine import AttributionConfig, AttributionEngine
    engine = AttributionEngine(AttributionConfig(teacher="google/flan-t5-xl", method="saliency", k=5, template="cqa"))
    rows = engine.attribute(examples)

AttributionEngine(config) loads the teacher once; `teacher_name` is the teacher id as stored in rows.
attribute(examples) -> list[dict]
    examples: dataset rows with keys example_id, input, target (str|None), choices (list|None), split.
    Returns one dict per example, same order, keyed by storage.schemas.RATIONALE_COLUMNS minus the
    provenance columns (dataset, split, job_id, shard_index, created_at) -- pass them to
    storage.rationale_table(rows, dataset=..., split=..., job_id=..., shard_index=...).
    Never raises for a bad row: the row comes back with `error` set (input longer than the teacher
    reads, tokenizer failure, target=gold without a target, non-finite score, ...).

Per example: input_text = template.format(input=row["input"]); the explained answer is the gold
target (target="gold"), else the best-scoring choice when the row has choices (score_choices), else
the teacher's greedy answer; its log p is attributed to the input words (units.py) by `method`
(methods.py); the top-k words in input order are the rationale; comprehensiveness / sufficiency /
gold_overlap are measured when `faithfulness` is on (faithfulness.py). Rows are sorted by length
and batched by `token_budget` (batching.py); a batch that fails is retried one row at a time so
one bad row cannot fail its neighbours.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .batching import length_batches, pad
from .faithfulness import comprehensiveness_sufficiency, gold_overlap
from .constants import BASELINES, DTYPES, GRADIENT_METHODS, METHODS, TARGETS
from .methods import gradient_scores, occlusion_scores, score_sequences
from .teachers import load_teacher
from .templates import Template, resolve_template
from .units import Units, aggregate, top_k, word_units


@dataclass
class AttributionConfig:
    """One attribution run's settings; saved beside its shards (to_dict)."""

    teacher: str
    """Hugging Face id or local path of the teacher (seq2seq, causal LM or sequence classifier)."""
    method: str = "saliency"
    """saliency | input_x_gradient | integrated_gradients | occlusion (methods.py)."""
    k: int = 5
    """Rationale size: the k highest-scoring input words, kept in input order."""
    target: str = "teacher"
    """teacher: explain the teacher's own answer; gold: explain the dataset's target."""
    template: str = "generic"
    """Prompt template: cqa | svamp | nli | generic (templates.py), or a literal string with {input}."""
    token_budget: int = 4096
    """Max padded tokens per batch (rows x longest row); also bounds occlusion / faithfulness batches."""
    max_new_tokens: int = 32
    """Greedy generation length limit for the teacher's answer."""
    n_steps: int = 16
    """Integrated gradients: number of Gauss-Legendre steps between the baseline and the input."""
    faithfulness: bool = True
    """Measure comprehensiveness, sufficiency and gold_overlap per row (2 extra forward rows per example)."""
    device: str | None = None
    """cuda | cpu | cuda:N; None picks cuda when available, else cpu."""
    dtype: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16 (autocast, CUDA only)."""
    max_input_tokens: int | None = None
    """Longest input (tokens, template included) a row may have; None: the teacher's own maximum."""
    score_choices: bool = True
    """Rows with choices: explain the choice with the highest log p instead of the generated answer."""
    baseline: str = "zero"
    """Integrated gradients baseline for the input words: zero | pad (embedding); template tokens stay."""
    ig_steps_per_pass: int | None = None
    """Integrated gradients: scaled copies per forward/backward pass; None runs all n_steps at once."""
    extra: dict = field(default_factory=dict)
    """Free-form provenance saved with the config (not read by the engine)."""

    def __post_init__(self):
        def bad(name, msg):
            raise ValueError(f"--{name.replace('_', '-')}: {msg}")

        if not isinstance(self.teacher, str) or not self.teacher.strip():
            bad("teacher", "give a Hugging Face id or a local path")
        if self.method not in METHODS:
            bad("method", f"{self.method!r} is not one of {', '.join(METHODS)}")
        if not isinstance(self.k, int) or self.k < 1:
            bad("k", f"{self.k!r}: the rationale size must be an integer >= 1")
        if self.target not in TARGETS:
            bad("target", f"{self.target!r} is not one of {', '.join(TARGETS)}")
        resolve_template(self.template)  # raises naming the template
        for name in ("token_budget", "max_new_tokens", "n_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                bad(name, f"{getattr(self, name)!r}: must be an integer >= 1")
        if self.dtype not in DTYPES:
            bad("dtype", f"{self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.dtype == "bf16" and (self.device or "").startswith("cpu"):
            bad("dtype", "bf16 autocast is used on CUDA only; use fp32 (or auto) on the CPU")
        if self.max_input_tokens is not None and self.max_input_tokens < 1:
            bad("max_input_tokens", "must be >= 1 or None")
        if self.baseline not in BASELINES:
            bad("baseline", f"{self.baseline!r} is not one of {', '.join(BASELINES)}")
        if self.ig_steps_per_pass is not None and self.ig_steps_per_pass < 1:
            bad("ig_steps_per_pass", "must be >= 1 or None")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class _Prepared:
    index: int
    example: dict
    input_text: str
    start: int
    end: int
    ids: list[int]
    units: Units
    gold: list[int] | None


def _norm(text: str | None) -> str:
    return " ".join(str(text or "").lower().split())


class AttributionEngine:
    """Loads the teacher once; `attribute(examples)` returns rationale rows (see module docstring)."""

    def __init__(self, config: AttributionConfig, teacher=None):
        self.config = config
        self.template: Template = resolve_template(config.template)
        self.teacher = teacher or load_teacher(
            config.teacher, device=config.device, dtype=config.dtype, max_input_tokens=config.max_input_tokens)
        self.teacher_name = config.teacher

    # ------------------------------------------------------------------ public
    def attribute(self, examples: list[dict]) -> list[dict]:
        out: list[dict | None] = [None] * len(examples)
        prepared: list[_Prepared] = []
        for i, ex in enumerate(examples):
            try:
                prepared.append(self._prepare(i, ex))
            except Exception as exc:  # a bad row never fails the batch
                out[i] = self._error_row(ex, None, exc)
        batches = length_batches([len(p.ids) for p in prepared], self.config.token_budget)
        for batch in batches:
            group = [prepared[j] for j in batch]
            try:
                rows = self._run_batch(group)
            except Exception:
                rows = []
                for p in group:  # isolate the failing row(s)
                    try:
                        rows += self._run_batch([p])
                    except Exception as exc:
                        rows.append(self._error_row(p.example, p.input_text, exc))
            for p, row in zip(group, rows):
                out[p.index] = row
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ steps
    def _prepare(self, index: int, ex: dict) -> _Prepared:
        text = ex.get("input")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("row has no input text")
        input_text, start, end = self.template.render(text)
        ids, offsets, special = self.teacher.encode(input_text)
        limit = self.teacher.max_input_tokens
        if len(ids) > limit:
            raise ValueError(f"input is {len(ids)} tokens; the teacher reads at most {limit} (set max_input_tokens or shorten the input)")
        units = word_units(input_text, start, end, offsets, special,
                           self.template.scaffolding_spans(input_text, start, end))
        if not units.words:
            raise ValueError("input has no attributable words")
        gold = None
        if self.config.target == "gold":
            if ex.get("target") in (None, ""):
                raise ValueError("target=gold but the row has no target")
            gold = self.teacher.answer_ids(str(ex["target"]), input_text)
        return _Prepared(index, ex, input_text, start, end, ids, units, gold)

    def _answers(self, group: list[_Prepared], ids, mask) -> tuple[list[list[int]], list[str]]:
        """The explained answer per row: token ids and text."""
        cfg, teacher = self.config, self.teacher
        answers: list = [None] * len(group)
        texts: list = [None] * len(group)
        to_generate, pairs, owners = [], [], []
        for r, p in enumerate(group):
            choices = p.example.get("choices")
            if p.gold is not None:
                answers[r], texts[r] = p.gold, str(p.example["target"])
            elif cfg.score_choices and choices and teacher.kind != "classifier":
                for c in choices:  # every choice of every row in one batched scoring pass
                    pairs.append((p.ids, teacher.answer_ids(str(c), p.input_text), str(c)))
                    owners.append(r)
            else:
                to_generate.append(r)
        if pairs:
            lp = score_sequences(teacher, [q[0] for q in pairs], [q[1] for q in pairs], cfg.token_budget)
            best: dict[int, int] = {}
            for j, r in enumerate(owners):  # first best choice wins ties
                if r not in best or lp[j] > lp[best[r]]:
                    best[r] = j
            for r, j in best.items():
                answers[r], texts[r] = pairs[j][1], pairs[j][2]
        if to_generate:
            sub = torch.tensor(to_generate, device=ids.device)
            generated = teacher.generate(ids.index_select(0, sub), mask.index_select(0, sub), cfg.max_new_tokens)
            for r, ans in zip(to_generate, generated):
                answers[r], texts[r] = ans, teacher.decode(ans)
        return answers, texts

    def _run_batch(self, group: list[_Prepared]) -> list[dict]:
        cfg, teacher = self.config, self.teacher
        seqs = [p.ids for p in group]
        ids, mask = pad(seqs, teacher.pad_id, teacher.padding_side, teacher.device)
        answers, texts = self._answers(group, ids, mask)
        width = ids.shape[1]
        offsets = [width - len(s) if teacher.padding_side == "left" else 0 for s in seqs]
        unit_mask = torch.zeros_like(mask, dtype=torch.bool)
        for r, p in enumerate(group):
            unit_mask[r, offsets[r]: offsets[r] + len(p.ids)] = torch.tensor(p.units.unit_mask(), dtype=torch.bool)
        full_logp = None
        if cfg.method in GRADIENT_METHODS:
            ans_ids, ans_mask = teacher.answer_tensors(answers)
            token_scores, logp = gradient_scores(
                teacher, cfg.method, ids, mask, ans_ids, ans_mask, unit_mask,
                n_steps=cfg.n_steps, baseline=cfg.baseline, steps_per_pass=cfg.ig_steps_per_pass)
            token_scores = token_scores.cpu().numpy()
            unit_scores = [aggregate(token_scores[r, offsets[r]:], p.units) for r, p in enumerate(group)]
            if logp is not None:
                full_logp = logp.double().cpu().numpy()
        if full_logp is None:
            full_logp = score_sequences(teacher, seqs, answers, cfg.token_budget)
        if cfg.method == "occlusion":
            unit_scores = occlusion_scores(teacher, seqs, [p.units for p in group], answers, full_logp, cfg.token_budget)
        rationales = [top_k(s, cfg.k) for s in unit_scores]
        comp, suff = [None] * len(group), [None] * len(group)
        if cfg.faithfulness:
            comp, suff = comprehensiveness_sufficiency(
                teacher, seqs, [p.units for p in group], rationales, answers, full_logp, cfg.token_budget)
        rows = []
        for r, p in enumerate(group):
            scores = unit_scores[r]
            if not np.all(np.isfinite(scores)) or not math.isfinite(full_logp[r]):
                rows.append(self._error_row(p.example, p.input_text, ValueError("non-finite score")))
                continue
            target = p.example.get("target")
            rat = rationales[r]
            rows.append({
                "example_id": self._example_id(p.example),
                "input_text": p.input_text,
                "target_text": None if target is None else str(target),
                "teacher_model": self.teacher_name,
                "method": cfg.method,
                "teacher_output": texts[r],
                "teacher_correct": (None if target is None or cfg.target == "gold" else _norm(texts[r]) == _norm(target)),
                "tokens": list(p.units.words),
                "spans": [{"start": s, "end": e} for s, e in p.units.spans],
                "scores": [float(x) for x in scores],
                "rationale": [p.units.words[i] for i in rat],
                "rationale_text": " ".join(p.units.words[i] for i in rat),
                "error": None,
                "teacher_logprob": float(full_logp[r]),
                "comprehensiveness": comp[r],
                "sufficiency": suff[r],
                "gold_overlap": (gold_overlap(p.input_text, p.start, p.end, None if target is None else str(target),
                                              p.units.spans, rat) if cfg.faithfulness else None),
            })
        return rows

    # ------------------------------------------------------------------ rows
    @staticmethod
    def _example_id(ex: dict) -> str:
        if ex.get("example_id") not in (None, ""):
            return str(ex["example_id"])
        return hashlib.sha1(str(ex.get("input", "")).encode()).hexdigest()[:16]

    def _error_row(self, ex: dict, input_text: str | None, exc: BaseException) -> dict:
        target = ex.get("target")
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
        return {
            "example_id": self._example_id(ex), "input_text": input_text if input_text is not None else str(ex.get("input") or ""),
            "target_text": None if target is None else str(target), "teacher_model": self.teacher_name,
            "method": self.config.method, "teacher_output": None, "teacher_correct": None, "tokens": None,
            "spans": None, "scores": None, "rationale": None, "rationale_text": None, "error": message[:500],
            "teacher_logprob": None, "comprehensiveness": None, "sufficiency": None, "gold_overlap": None,
        }
