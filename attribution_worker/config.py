"""AttributionConfig: every option of the engine, in one definition (importing this loads no torch).

    from attribution_worker.config import AttributionConfig
    cfg = AttributionConfig(teacher="google/flan-t5-small", method="integrated_gradients", max_ig_error=0.05)

The field docstrings are the help text of the `salient attribute` / `attribute-local` flags and
of the REST job body (spec.py generates both from these fields). Each invalid value raises
ValueError naming its flag (`--k: ...`). A job (spec.JobSpec) nests one AttributionConfig.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .constants import ANSWER_BACKENDS, BASELINES, DTYPES, METHODS, TARGETS


class AttributionConfig(BaseModel):
    """One attribution run's engine settings; saved in the job spec (to_dict)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=False)

    teacher: str
    """Hugging Face id or local path of the teacher (seq2seq, causal LM, sequence classifier or multiple choice)."""
    method: str = "saliency"
    """Attribution method: saliency | input_x_gradient | integrated_gradients | occlusion."""
    k: int = 5
    """Rationale size: the k highest-scoring input words, kept in input order."""
    target: str = "teacher"
    """teacher: explain the teacher's own answer; gold: explain the dataset's target."""
    template: str | None = None
    """Prompt template: cqa | svamp | nli | generic, or a literal with {input}; None follows the dataset's ingest format (generic for the bare engine)."""
    scaffolding: str | None = None
    """Labels ingest put inside the input that are never scored: cqa | nli | none; None follows the template (jobs: the dataset's format)."""
    token_budget: int = 4096
    """Max padded tokens per forward/backward pass (rows x longest row, IG steps included): bounds memory."""
    max_new_tokens: int = 32
    """Greedy generation length limit for the teacher's answer (tokens)."""
    n_steps: int | None = None
    """Integrated gradients steps (Gauss-Legendre); None: the teacher kind's default (constants.IG_DEFAULTS)."""
    baseline: str = "auto"
    """Integrated gradients baseline for the input words: auto (per teacher kind) | zero | pad embedding."""
    max_ig_error: float | None = None
    """Integrated gradients: rows whose completeness error exceeds this are re-run with doubled steps (up to ig_max_steps)."""
    ig_max_steps: int = 256
    """Integrated gradients: the most steps max_ig_error may raise a row to."""
    ig_steps_per_pass: int | None = None
    """Integrated gradients: scaled copies per pass; None derives it from token_budget."""
    faithfulness: bool = True
    """Measure ERASER comprehensiveness / sufficiency / AOPC and gold_overlap per row (forward passes only)."""
    device: str | None = None
    """cuda | cpu | cuda:N; None picks cuda when available, else cpu."""
    dtype: str = "auto"
    """auto (bf16 weights on CUDA, fp32 on CPU) | fp32 | bf16 (CUDA only)."""
    max_input_tokens: int | None = None
    """Longest prompt plus explained answer (tokens) a row may have; None: the teacher's own maximum."""
    score_choices: bool = True
    """Rows with choices: explain the choice with the highest log p instead of the generated answer."""
    answers: str = "torch"
    """Backend that generates the teacher's answers: torch | vllm (`gpu` extra, CUDA); attribution always runs in torch."""
    extra: dict = Field(default_factory=dict)
    """Free-form provenance saved with the config (not read by the engine)."""

    @model_validator(mode="after")
    def _check(self):
        def bad(name, msg):
            raise ValueError(f"--{name.replace('_', '-')}: {msg}")

        if not self.teacher.strip():
            bad("teacher", "give a Hugging Face id or a local path")
        for name, allowed in (("method", METHODS), ("target", TARGETS), ("baseline", BASELINES), ("dtype", DTYPES),
                              ("answers", ANSWER_BACKENDS)):
            if getattr(self, name) not in allowed:
                bad(name, f"{getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.k < 1:
            bad("k", f"{self.k!r}: the rationale size must be an integer >= 1")
        if self.template is not None:
            from .templates import resolve_template

            resolve_template(self.template)  # raises naming the template
        if self.scaffolding is not None:
            from .templates import scaffolding_patterns

            try:
                scaffolding_patterns(self.scaffolding)
            except ValueError as exc:
                bad("scaffolding", str(exc))
        for name in ("token_budget", "max_new_tokens", "n_steps", "ig_max_steps", "ig_steps_per_pass", "max_input_tokens"):
            v = getattr(self, name)
            if v is not None and v < 1:
                bad(name, f"{v!r}: must be an integer >= 1")
        if self.max_ig_error is not None and not self.max_ig_error > 0:
            bad("max_ig_error", f"{self.max_ig_error!r}: must be > 0 (a relative completeness error, e.g. 0.05)")
        if self.dtype == "bf16" and (self.device or "").startswith("cpu"):
            bad("dtype", "bf16 weights are used on CUDA only; use fp32 (or auto) on the CPU")
        if self.answers == "vllm" and (self.device or "").startswith("cpu"):
            bad("answers", "vllm generates on CUDA only; use --answers torch on the CPU")
        return self

    def to_dict(self) -> dict:
        return self.model_dump()
