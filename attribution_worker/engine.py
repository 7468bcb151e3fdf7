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
target (target="gold"), else the best-scoring choice when the row has choices (score_choices; a
multiple-choice teacher always picks among the choices), else the teacher's greedy answer (torch,
or vLLM with answers="vllm"); its log p is attributed to the input words (units.py) by `method`
(methods.py); the top-k words in input order are the rationale. Also per row: ERASER
comprehensiveness / sufficiency / AOPC and gold_overlap when `faithfulness` is on
(faithfulness.py); the IG completeness error and steps (rows above max_ig_error are refined); the
teacher's distribution over labels or choices (answer_choices / answer_probs). Rows are sorted by
length and batched by `token_budget` (batching.py); a batch that fails is retried one row at a
time so one bad row cannot fail its neighbours.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from storage.schemas import PROVENANCE_COLUMNS, RATIONALE_COLUMNS

from .batching import length_batches, pad
from .config import AttributionConfig  # noqa: F401  (re-exported: engine.AttributionConfig)
from .faithfulness import FAITHFULNESS_COLUMNS, faithfulness, gold_overlap
from .constants import GRADIENT_METHODS, IG_DEFAULTS
from .methods import gradient_scores, occlusion_scores, score_sequences
from .teachers import Teacher, load_teacher, pack_choices
from .templates import Template, resolve_template
from .units import Units, aggregate, top_k, word_units

# The columns the engine fills: every rationale column but the provenance ones.
ENGINE_COLUMNS = tuple(c for c in RATIONALE_COLUMNS if c not in PROVENANCE_COLUMNS)


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

    def __init__(self, config: AttributionConfig, teacher: Teacher | None = None):
        self.config = config
        self.template: Template = resolve_template(config.template or "generic", config.scaffolding)
        self.teacher = teacher or load_teacher(
            config.teacher, device=config.device, dtype=config.dtype, max_input_tokens=config.max_input_tokens)
        self.teacher_name = config.teacher
        self.answerer = None
        if config.answers == "vllm":
            if self.teacher.kind != "causal":
                raise ValueError(f"--answers vllm: vLLM generates for decoder-only teachers; {config.teacher} is "
                                 f"{self.teacher.kind}: use --answers torch")
            from .vllm_answers import VLLMAnswers

            self.answerer = VLLMAnswers(config.teacher, max_new_tokens=config.max_new_tokens, eos_id=self.teacher.eos_id)
        default_baseline, default_steps = IG_DEFAULTS[self.teacher.kind]
        self.ig_baseline = default_baseline if config.baseline == "auto" else config.baseline
        self.ig_steps = config.n_steps or default_steps

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
        if self.teacher.kind == "multiple_choice":
            choices = ex.get("choices")
            if not choices:
                raise ValueError("a multiple-choice teacher needs the row's choices; this row has none")
            longest = max(len(self.teacher.choice_ids(str(c))) for c in choices) + 1  # + [SEP]
            if len(ids) + longest > limit:
                raise ValueError(f"question is {len(ids)} tokens and the longest choice {longest}; the teacher reads "
                                 f"at most {limit} per (question, choice) pair (shorten the input or the choices)")
        if self.config.target == "gold":
            if ex.get("target") in (None, ""):
                raise ValueError("target=gold but the row has no target")
            if self.teacher.kind == "multiple_choice":
                norm = [_norm(c) for c in ex["choices"]]
                if _norm(ex["target"]) not in norm:
                    raise ValueError(f"target {ex['target']!r} is not one of the row's choices {ex['choices']}")
                gold = [norm.index(_norm(ex["target"]))]  # the choice index
            else:
                gold = self.teacher.answer_ids(str(ex["target"]), input_text)
        if self.teacher.kind == "causal":  # the answer is appended to the prompt: both share the positions
            if gold is not None:
                longest, what = len(gold), "the gold answer is"
            elif self.config.score_choices and ex.get("choices"):
                longest = max(len(self.teacher.answer_ids(str(c), input_text)) for c in ex["choices"])
                what = "the longest choice is"
            else:
                longest, what = self.config.max_new_tokens, "the answer may be (--max-new-tokens)"
            if len(ids) + longest > limit:
                raise ValueError(f"prompt is {len(ids)} tokens and {what} {longest}; the decoder-only teacher reads "
                                 f"at most {limit} tokens of prompt plus answer (shorten the input, lower "
                                 "--max-new-tokens or set --max-input-tokens)")
        return _Prepared(index, ex, input_text, start, end, ids, units, gold)

    def _answers(self, group: list[_Prepared], ids, mask) -> "_Answers":
        """The explained answer per row (token ids, text), its log p where already computed, and the
        teacher's distribution over a closed answer set (labels or choices) where there is one."""
        cfg, teacher = self.config, self.teacher
        n = len(group)
        out = _Answers([None] * n, [None] * n, np.full(n, np.nan), [None] * n, [None] * n)
        if teacher.kind == "multiple_choice":  # one forward scores every (question, choice) pair
            choice_ids = [[teacher.choice_ids(str(c)) for c in p.example["choices"]] for p in group]
            choice_lp = teacher.choice_logprobs(ids, mask, choice_ids).double().cpu().numpy()
            for r, p in enumerate(group):
                lp = choice_lp[r, : len(choice_ids[r])]
                chosen = p.gold[0] if p.gold is not None else int(lp.argmax())
                out.ids[r] = pack_choices(chosen, choice_ids[r])
                out.texts[r] = str(p.example["choices"][chosen])
                out.logp[r] = lp[chosen]
                out.choices[r], out.probs[r] = [str(c) for c in p.example["choices"]], _softmax(lp)
            return out
        for r, p in enumerate(group):
            if p.gold is not None:
                out.ids[r], out.texts[r] = p.gold, str(p.example["target"])
        if teacher.kind == "classifier":  # one forward gives every label's log p
            class_lp = teacher.class_logprobs(ids, mask).double().cpu().numpy()
            labels = teacher.labels()
            for r in range(n):
                if out.ids[r] is None:
                    out.ids[r] = [int(class_lp[r].argmax())]
                    out.texts[r] = teacher.decode(out.ids[r])
                out.logp[r] = class_lp[r, out.ids[r][0]]
                out.choices[r], out.probs[r] = labels, _softmax(class_lp[r])
            return out
        pairs, owners = [], []
        for r, p in enumerate(group):
            choices = p.example.get("choices")
            if cfg.score_choices and choices:
                for c in choices:  # every choice of every row in one batched scoring pass
                    pairs.append((p.ids, teacher.answer_ids(str(c), p.input_text), str(c)))
                    owners.append(r)
        if pairs:
            lp = score_sequences(teacher, [q[0] for q in pairs], [q[1] for q in pairs], cfg.token_budget)
            for r in sorted(set(owners)):
                js = [j for j, o in enumerate(owners) if o == r]
                best = max(js, key=lambda j: (lp[j], -j))  # first best choice wins ties
                out.choices[r] = [pairs[j][2] for j in js]
                out.probs[r] = _softmax(lp[js])
                if out.ids[r] is None:
                    out.ids[r], out.texts[r] = pairs[best][1], pairs[best][2]
                    out.logp[r] = lp[best]  # no second forward for occlusion / faithfulness
        to_generate = [r for r in range(n) if out.ids[r] is None]
        if to_generate:
            if self.answerer is not None:  # vLLM on the same prompt token ids
                generated = self.answerer.generate([group[r].ids for r in to_generate])
            else:
                sub = torch.tensor(to_generate, device=ids.device)
                generated = teacher.generate(ids.index_select(0, sub), mask.index_select(0, sub), cfg.max_new_tokens)
            for r, ans in zip(to_generate, generated):  # exactly the generated tokens are explained
                out.ids[r], out.texts[r] = ans, teacher.decode(ans)
        return out

    def _run_batch(self, group: list[_Prepared]) -> list[dict]:
        cfg, teacher = self.config, self.teacher
        seqs = [p.ids for p in group]
        ids, mask = pad(seqs, teacher.pad_id, teacher.padding_side, teacher.device)
        ans = self._answers(group, ids, mask)
        answers = ans.ids
        width = ids.shape[1]
        offsets = [width - len(s) if teacher.padding_side == "left" else 0 for s in seqs]
        unit_mask = torch.zeros_like(mask, dtype=torch.bool)
        for r, p in enumerate(group):
            unit_mask[r, offsets[r]: offsets[r] + len(p.ids)] = torch.tensor(p.units.unit_mask(), dtype=torch.bool)
        full_logp = ans.logp.copy()
        ig_error, ig_steps = [None] * len(group), [None] * len(group)
        if cfg.method in GRADIENT_METHODS:
            ans_ids, ans_mask = teacher.answer_tensors(answers)
            result = gradient_scores(
                teacher, cfg.method, ids, mask, ans_ids, ans_mask, unit_mask,
                n_steps=self.ig_steps, baseline=self.ig_baseline, steps_per_pass=cfg.ig_steps_per_pass,
                token_budget=cfg.token_budget)
            if cfg.method == "integrated_gradients":
                result = self._refine_ig(result, ids, mask, ans_ids, ans_mask, unit_mask)
                ig_error = [float(e) if np.isfinite(e) else None for e in result.completeness_error()]
                ig_steps = [int(x) for x in result.steps]
            token_scores = result.scores.cpu().numpy()
            unit_scores = [aggregate(token_scores[r, offsets[r]:], p.units) for r, p in enumerate(group)]
            if result.logp is not None:
                full_logp = result.logp.double().cpu().numpy()
        missing = [r for r in range(len(group)) if not np.isfinite(full_logp[r])]
        if missing:  # rows whose log p no earlier pass computed
            full_logp[missing] = score_sequences(teacher, [seqs[r] for r in missing], [answers[r] for r in missing],
                                                 cfg.token_budget)
        if cfg.method == "occlusion":
            unit_scores = occlusion_scores(teacher, seqs, [p.units for p in group], answers, full_logp, cfg.token_budget)
        rationales = [top_k(s, cfg.k) for s in unit_scores]
        faith = [dict.fromkeys(FAITHFULNESS_COLUMNS) for _ in group]
        if cfg.faithfulness:
            faith = faithfulness(teacher, seqs, [p.units for p in group], unit_scores, rationales, answers, full_logp,
                                 cfg.token_budget)
        rows = []
        for r, p in enumerate(group):
            scores = unit_scores[r]
            if not np.all(np.isfinite(scores)) or not math.isfinite(full_logp[r]):
                rows.append(self._error_row(p.example, p.input_text, ValueError("non-finite score")))
                continue
            target = p.example.get("target")
            rat = rationales[r]
            rows.append({
                **dict.fromkeys(ENGINE_COLUMNS),
                "example_id": self._example_id(p.example),
                "input_text": p.input_text,
                "target_text": None if target is None else str(target),
                "teacher_model": self.teacher_name,
                "method": cfg.method,
                "teacher_output": ans.texts[r],
                "teacher_correct": (None if target is None or cfg.target == "gold" else _norm(ans.texts[r]) == _norm(target)),
                "tokens": list(p.units.words),
                "spans": [{"start": s, "end": e} for s, e in p.units.spans],
                "scores": [float(x) for x in scores],
                "rationale": [p.units.words[i] for i in rat],
                "rationale_text": " ".join(p.units.words[i] for i in rat),
                "teacher_logprob": float(full_logp[r]),
                "teacher_prob": math.exp(float(full_logp[r])),
                **faith[r],
                "gold_overlap": (gold_overlap(p.input_text, p.start, p.end, None if target is None else str(target),
                                              p.units.spans, rat) if cfg.faithfulness else None),
                "ig_completeness_error": ig_error[r],
                "ig_steps": ig_steps[r],
                "answer_choices": ans.choices[r],
                "answer_probs": None if ans.probs[r] is None else [float(x) for x in ans.probs[r]],
            })
        return rows

    def _refine_ig(self, result, ids, mask, ans_ids, ans_mask, unit_mask):
        """Rows whose completeness error exceeds max_ig_error are re-run with doubled steps (up to ig_max_steps)."""
        cfg = self.config
        if cfg.max_ig_error is None:
            return result
        steps = self.ig_steps
        while True:
            err = result.completeness_error()
            bad = [r for r in range(len(err)) if not (err[r] <= cfg.max_ig_error) and result.steps[r] < cfg.ig_max_steps]
            if not bad:
                return result
            steps = min(cfg.ig_max_steps, max(result.steps[r] for r in bad) * 2)
            sub = torch.tensor(bad, device=ids.device)
            pick = lambda t: t.index_select(0, sub.to(t.device))  # noqa: E731
            again = gradient_scores(self.teacher, cfg.method, pick(ids), pick(mask), pick(ans_ids), pick(ans_mask),
                                    pick(unit_mask), n_steps=steps, baseline=self.ig_baseline,
                                    steps_per_pass=cfg.ig_steps_per_pass, token_budget=cfg.token_budget)
            result.replace_rows(bad, again)

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
            **dict.fromkeys(ENGINE_COLUMNS),
            "example_id": self._example_id(ex), "input_text": input_text if input_text is not None else str(ex.get("input") or ""),
            "target_text": None if target is None else str(target), "teacher_model": self.teacher_name,
            "method": self.config.method, "error": message[:500],
        }


@dataclass
class _Answers:
    """Per row of a batch: answer token ids, answer text, known log p (nan: not computed yet),
    answer_choices and answer_probs (None: free generation)."""

    ids: list
    texts: list
    logp: np.ndarray
    choices: list
    probs: list


def _softmax(logp) -> np.ndarray:
    x = np.asarray(logp, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()
