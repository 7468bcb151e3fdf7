"""Student kinds: how a student is built, its loss on a batch, how it answers, and how it is saved.

    kind = student_kind(cfg, tokenizer, data)        # by --student
    model = kind.build(seed=0)
    loss, parts = kind.loss(model, batch, a=0.5, kd_weight=0.5, device=device)
    preds = kind.predict(model, examples, device=device, autocast=autocast)   # answer strings
    val_loss, preds = kind.validate(model, val, device=device, autocast=autocast)  # label loss and answers
    model = load_student(run_dir / "model")           # any kind, back from the registry

--student choices:
  tiny | small | <seq2seq id/path>   DSS multi-task seq2seq (presets.build_student): predict: / explain:.
  encdec     generative DSS on a warm-started encoder-decoder: transformers.EncoderDecoderModel
             .from_encoder_decoder_pretrained(--checkpoint, --decoder-checkpoint or --checkpoint), i.e. a BERT2BERT
             model (Rothe, Narayan, Severyn, "Leveraging Pre-trained Checkpoints for Sequence Generation
             Tasks", TACL 2020): cross-attention is new, everything else starts from the checkpoints.
  extractive an encoder (AutoModel from --checkpoint) with two heads on its last hidden states H [B, T, h]:
             classify: Linear(h, C) on the attention-masked mean of H -> label logits [B, C];
             tag:      Linear(h, 1) per token -> rationale logits [B, T], trained to mark the tokens whose
                       character span overlaps one of the teacher's rationale words (offset mapping); with
                       --rationale-target soft, to give each token its word's saliency over the row's highest.
--student-layers N keeps the first N layers of each checkpoint (encoder and decoder), as DSS's
students are smaller than their teachers.

Loss of one batch (a = --label-weight, w = --kd-weight, tau = --kd-temperature):
    L = a * [(1 - w) * CE(label) + w * KD] + (1 - a) * L_rationale
    KD = tau^2 * KL(p_teacher^tau || softmax(s / tau))   (Hinton et al. 2015), over rows with a teacher distribution
where p_teacher^tau = softmax(log p_teacher / tau) is the teacher's distribution (schema v3 `answer_probs`
over `answer_choices`) at temperature tau, and s are the student's scores of the same choices:
  extractive: its classification logits of those labels (labels mode) or its scores of the row's choices
             (choices mode);
  seq2seq / encdec: the sequence log-likelihood sum_t log p(y_t | y_<t, "predict: " + x) of each choice
             string (whole-sequence scores, not first tokens: NLI labels share no first-token guarantee and
             CQA choices often share their first word).
L_rationale is the DSS explain: cross-entropy (seq2seq kinds) or the token-tagging BCE, token-mean over the real
(non-special, non-padding) tokens of rows that have rationale spans (extractive).
Label space of the extractive student: `labels` mode, the sorted distinct training labels (NLI); `choices` mode,
when every training row carries its own answer_choices that differ between rows (CQA): class i is choice i, and
the student scores each "[CLS] input [SEP] choice_i [SEP]" pair with the classify head as Linear(h, 1), as
BertForMultipleChoice does: each choice's text meets the question in the encoder, where a position classifier
over the input alone has to learn which slot holds the answer. The tagging head then runs on every pair; only
the input's tokens carry tagging labels. With --choice-scoring spans the row is read once, as "[CLS] input [SEP]
choice_1 | choice_2 | ... [SEP]", and choice i's score is the same Linear(h, 1) on the mean of its own tokens (a
choice without tokens is never picked): on CQA a quarter of the pairs' tokens. In labels mode the setting
has no effect.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import Data, Example
from .evaluate import predict as generate_answers

SEQ2SEQ_KINDS = ("encdec",)
ENCODER_KINDS = ("extractive",)
KINDS = ENCODER_KINDS + SEQ2SEQ_KINDS
META_FILE = "student.json"
HEADS_FILE = "student_heads.pt"


def kd_loss(student_scores: torch.Tensor, teacher_probs: torch.Tensor, valid: torch.Tensor, tau: float) -> torch.Tensor:
    """tau^2 * KL(teacher^tau || student^tau), mean over rows.

    student_scores [N, C] logits or log-likelihoods; teacher_probs [N, C] (rows sum to 1); valid [N, C] bool:
    which classes exist for the row (the rest are ignored on both sides).
    """
    neg = torch.finfo(student_scores.dtype).min / 4
    s = student_scores.masked_fill(~valid, neg) / tau
    t = torch.log(teacher_probs.clamp_min(1e-8)).masked_fill(~valid, neg) / tau
    t = F.softmax(t, dim=-1)
    log_s = F.log_softmax(s, dim=-1)
    kl = (t * (torch.log(t.clamp_min(1e-12)) - log_s)).masked_fill(~valid, 0.0).sum(-1)
    return (tau ** 2) * kl.mean()


def _layers_kwargs(layers: int | None, checkpoint: str) -> dict:
    from transformers import AutoConfig

    if layers is None:
        return {}
    have = AutoConfig.from_pretrained(checkpoint).num_hidden_layers
    if layers > have:
        raise ValueError(f"--student-layers {layers}: {checkpoint} has only {have} layers")
    return {"num_hidden_layers": layers}


# ------------------------------------------------------------------ extractive
class ExtractiveStudent(torch.nn.Module):
    """Encoder + classification head (mean-pooled) + token-tagging head; see the module docstring."""

    def __init__(self, encoder, meta: dict):
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.meta = meta
        self.dropout = torch.nn.Dropout(0.1)
        self.scoring = meta.get("choice_scoring") if meta["label_mode"] == "choices" else None
        self.classify = torch.nn.Linear(hidden, 1 if self.scoring else meta["n_classes"])
        self.tag = torch.nn.Linear(hidden, 1)

    def forward(self, input_ids, attention_mask, token_type_ids=None, choice_mask=None):
        """labels mode: [B, T] inputs -> (class logits [B, C], tag logits [B, T]).
        choices mode, pairs: [B * C, T] (input, choice) pairs, row-major -> (choice scores [B, C], tag logits [B * C, T]).
        choices mode, spans: [B, T] "input [SEP] choices" rows and choice_mask [B, C, T] (1 on choice c's tokens)
        -> (choice scores [B, C], each the head on the mean of its choice's tokens, tag logits [B, T])."""
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        if self.scoring == "spans":
            if choice_mask is None:
                raise ValueError("a span-scoring student needs each choice's token mask (choice_mask [B, C, T])")
            m = choice_mask.to(h.dtype)
            count = m.sum(-1, keepdim=True)
            scores = self.classify(self.dropout(torch.einsum("bct,bth->bch", m, h) / count.clamp_min(1.0))).squeeze(-1)
            scores = scores.masked_fill(count.squeeze(-1) == 0, torch.finfo(scores.dtype).min / 4)  # no tokens: never picked
            return scores, self.tag(self.dropout(h)).squeeze(-1)
        if choice_mask is not None:
            raise ValueError("choice_mask is for a span-scoring student; this one scores (input, choice) pairs")
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        logits = self.classify(self.dropout(pooled))
        if self.scoring == "pairs":
            logits = logits.view(-1, self.meta["n_classes"])
        return logits, self.tag(self.dropout(h)).squeeze(-1)

    def save_pretrained(self, directory) -> None:
        directory = Path(directory)
        self.encoder.save_pretrained(directory)
        torch.save({"classify": self.classify.state_dict(), "tag": self.tag.state_dict()}, directory / HEADS_FILE)
        (directory / META_FILE).write_text(json.dumps(self.meta, indent=2))


def label_space(examples: list[Example]) -> dict:
    """{"label_mode": "labels", "labels": [...]} or {"label_mode": "choices", "n_classes": C} (module docstring)."""
    choice_sets = {e.answer_choices for e in examples}
    if examples and all(e.answer_choices for e in examples) and len(choice_sets) > 1:
        return {"label_mode": "choices", "labels": [], "n_classes": max(len(c) for c in choice_sets)}
    labels = sorted({e.label for e in examples} | {c for e in examples for c in e.answer_choices})
    return {"label_mode": "labels", "labels": labels, "n_classes": len(labels)}


def tag_labels(offsets, spans, special) -> list[float]:
    """Per token, the weight of the rationale span its character span overlaps (the highest if several), else 0.0;
    -1.0 for special/padding tokens.

    offsets: [(start, end)] per token from the tokenizer's offset mapping; spans: [(start, end, weight)] (weight 1.0
    for each rationale word of a top-k target; each word's share of the top saliency for a soft one); special:
    per-token bool (special token or padding).
    """
    out = []
    for (s, e), sp in zip(offsets, special):
        if sp or e <= s:
            out.append(-1.0)
        else:
            out.append(max((w for rs, re, w in spans if s < re and rs < e), default=0.0))
    return out


@dataclass
class ExtractiveKind:
    cfg: TrainConfig
    tokenizer: object
    meta: dict

    def build(self, seed: int) -> ExtractiveStudent:
        from transformers import AutoModel

        torch.manual_seed(seed)
        ckpt = self.cfg.checkpoint
        try:
            encoder = AutoModel.from_pretrained(ckpt, **_layers_kwargs(self.cfg.student_layers, ckpt))
        except OSError as exc:
            raise ValueError(f"--checkpoint {ckpt!r}: not loadable as a Hugging Face encoder ({exc})") from exc
        scoring = {"choice_scoring": self.cfg.choice_scoring} if self.meta["label_mode"] == "choices" else {}
        return ExtractiveStudent(encoder, {"kind": "extractive", "checkpoint": ckpt,
                                           "student_layers": self.cfg.student_layers, **self.meta, **scoring})

    def tag_spans(self, ex: Example) -> tuple:
        """(start, end, weight) spans of the row's tagging target: its saliency weights (--rationale-target soft) or
        its rationale words at 1.0; () when it has none."""
        if self.cfg.rationale_target == "soft":
            return ex.tag_weights
        return tuple((s, e, 1.0) for s, e in ex.rationale_spans)

    def encode(self, examples: list[Example], device, scoring: str | None = None):
        """(input ids, attention mask, token type ids or None, tag labels, choice mask or None).

        labels mode: [B, T] per row. choices mode, pairs: [B * C, T] per (input, choice) pair (rows with fewer
        choices get empty ones, masked later). choices mode, spans: [B, T] per "input [SEP] choice 1 | choice 2 ..."
        row, with the choice mask [B, C, T] marking each choice's tokens (all zero for a missing choice).
        scoring: pairs | spans (default: the run's --choice-scoring)."""
        scoring = scoring or self.cfg.choice_scoring
        pairs = self.meta["label_mode"] == "choices" and scoring == "pairs"
        spans = self.meta["label_mode"] == "choices" and scoring == "spans"
        n = self.meta["n_classes"]
        if pairs:
            rows = [e for e in examples for _ in range(n)]
            seconds = [str(c) for e in examples for c in (list(e.answer_choices) + [""] * n)[:n]]
        elif spans:
            rows = examples
            seconds, char_spans = [], []
            for e in examples:
                text, where = "", []
                for c in list(e.answer_choices)[:n]:
                    text += " | " if text else ""
                    where.append((len(text), len(text) + len(str(c))))
                    text += str(c)
                seconds.append(text)
                char_spans.append(where)
        else:
            rows, seconds = examples, None
        if seconds is None:
            enc = self.tokenizer([e.input for e in rows], truncation=True, max_length=self.cfg.max_input_tokens,
                                 padding=True, return_tensors="pt", return_offsets_mapping=True,
                                 return_special_tokens_mask=True)
        else:
            try:
                enc = self.tokenizer([e.input for e in rows], seconds, truncation="only_first",
                                     max_length=self.cfg.max_input_tokens, padding=True, return_tensors="pt",
                                     return_offsets_mapping=True, return_special_tokens_mask=True)
            except Exception as exc:  # the fast tokenizer's "Truncation error": only the input may be cut
                if "truncat" not in str(exc).lower():
                    raise
                longest = max(len(self.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in seconds)
                what = "all of a row's answer choices" if spans else "an answer choice"
                raise ValueError(f"--max-input-tokens {self.cfg.max_input_tokens}: {what} take {longest} tokens, and "
                                 "only the input is cut to fit, never a choice; raise --max-input-tokens"
                                 + (" or use --choice-scoring pairs" if spans else "")) from exc
        offsets = enc["offset_mapping"].tolist()
        special = (enc["special_tokens_mask"].bool() | ~enc["attention_mask"].bool()).tolist()
        if seconds is not None:  # only the input (sequence 0) carries tagging labels; the choices' offsets index them
            special = [[sp or enc.sequence_ids(i)[t] != 0 for t, sp in enumerate(row)] for i, row in enumerate(special)]
        tags = torch.tensor([tag_labels(off, self.tag_spans(e), sp) for off, e, sp in zip(offsets, rows, special)])
        choice_mask = None
        if spans:
            choice_mask = torch.zeros(len(rows), n, enc["input_ids"].shape[1])
            for i, where in enumerate(char_spans):  # the tokenizer maps each choice's characters to its tokens
                for c, (cs, ce) in enumerate(where):
                    tokens = {enc.char_to_token(i, k, sequence_index=1) for k in range(cs, ce)} - {None}
                    choice_mask[i, c, list(tokens)] = 1.0
            choice_mask = choice_mask.to(device)
        types = enc["token_type_ids"].to(device) if seconds is not None and "token_type_ids" in enc else None
        return enc["input_ids"].to(device), enc["attention_mask"].to(device), types, tags.to(device), choice_mask

    def classes(self, ex: Example) -> list[str]:
        return list(ex.answer_choices) if self.meta["label_mode"] == "choices" else self.meta["labels"]

    def targets(self, examples: list[Example], gold: bool, device):
        """(class index [B] (-100: not in the label space), teacher probs [B, C], has-teacher [B], valid [B, C])."""
        n = self.meta["n_classes"]
        idx, probs, has, valid = [], [], [], []
        for e in examples:
            classes = self.classes(e)
            label = e.gold if gold else e.label
            idx.append(classes.index(label) if label in classes else -100)
            row = [0.0] * n
            for c, p in zip(e.answer_choices, e.answer_probs):
                if c in classes and classes.index(c) < n:
                    row[classes.index(c)] += float(p)
            total = sum(row)
            has.append(total > 0)
            probs.append([x / total for x in row] if total > 0 else [1.0 / n] * n)
            valid.append([i < len(classes) for i in range(n)])
        return (torch.tensor(idx, device=device), torch.tensor(probs, device=device),
                torch.tensor(has, device=device), torch.tensor(valid, device=device))

    def _logits(self, model, examples, device):
        """The model's scores of the rows' classes, read in the form the model was trained in (its `student.json`
        records pairs or spans; a saved student is used as it is, whatever the run's --choice-scoring)."""
        have = getattr(model, "meta", {}).get("label_mode")
        if have != self.meta["label_mode"]:
            raise ValueError(f"this student was trained in {have} mode and these rows need {self.meta['label_mode']} "
                             "mode (choices: every row has its own answer choices); use a student trained on rows "
                             "like these")
        ids, mask, types, tags, choice_mask = self.encode(examples, device, scoring=getattr(model, "scoring", None))
        logits, tag_logits = model(ids, mask, types, choice_mask)
        return logits, tag_logits, tags

    def loss(self, model, batch: list[Example], a: float, kd_weight: float, device) -> tuple[torch.Tensor, dict]:
        logits, tag_logits, tags = self._logits(model, batch, device)
        idx, probs, has, valid = self.targets(batch, gold=False, device=device)
        logits = logits.masked_fill(~valid, torch.finfo(logits.dtype).min / 4)
        ce = F.cross_entropy(logits, idx, ignore_index=-100)
        parts = {"label_loss": float(ce.detach())}
        label_term = ce
        if kd_weight > 0 and bool(has.any()):
            kd = kd_loss(logits[has], probs[has], valid[has], self.cfg.kd_temperature)
            parts["kd_loss"] = float(kd.detach())
            label_term = (1.0 - kd_weight) * ce + kd_weight * kd
        if a >= 1.0:
            return label_term, parts
        real = tags >= 0
        has_spans = torch.tensor([bool(self.tag_spans(e)) for e in batch], device=device)
        rows = has_spans.repeat_interleave(tags.shape[0] // len(batch)).unsqueeze(-1) & real  # pairs: per choice
        if not bool(rows.any()):
            return a * label_term, parts
        bce = F.binary_cross_entropy_with_logits(tag_logits[rows], tags[rows])
        parts["rationale_loss"] = float(bce.detach())
        return a * label_term + (1.0 - a) * bce, parts

    def validate(self, model, examples: list[Example], device, autocast) -> tuple[float, list[str]]:
        """(mean label loss against the gold labels, predictions), from one forward pass per batch, in eval mode
        and without gradients: validation needs both, and a second pass for the loss would cost as much again."""
        total, count, out = 0.0, 0, []
        was = model.training
        model.eval()
        try:
            with torch.no_grad(), autocast():
                for i in range(0, len(examples), self.cfg.eval_batch_size):
                    chunk = examples[i:i + self.cfg.eval_batch_size]
                    logits, _, _ = self._logits(model, chunk, device)
                    idx, _, _, valid = self.targets(chunk, gold=True, device=device)
                    logits = logits.float()
                    pick = logits.masked_fill(~valid, float("-inf")).argmax(-1).tolist()
                    out += [self.classes(e)[k] for e, k in zip(chunk, pick)]
                    if bool((idx >= 0).any()):
                        total += float(F.cross_entropy(logits.masked_fill(~valid, -1e9), idx, ignore_index=-100,
                                                       reduction="sum"))
                        count += int((idx >= 0).sum())
        finally:
            model.train(was)
        return total / max(1, count), out

    def predict(self, model, examples: list[Example], device, autocast) -> list[str]:
        return self.validate(model, examples, device, autocast)[1]


# ------------------------------------------------------------------ seq2seq (presets, HF seq2seq, encdec)
def warm_start_encdec(encoder: str, decoder: str, tokenizer, *, encoder_layers: int | None = None,
                      decoder_layers: int | None = None, seed: int = 0):
    """BERT2BERT warm start (Rothe et al. 2020): an EncoderDecoderModel whose encoder and decoder come from the
    `encoder` / `decoder` checkpoints (their first N layers when *_layers is set) and whose cross-attention is new.

    Decoding starts from the tokenizer's [CLS] (pad where it has none) and stops at [SEP] (else eos), set on both
    the config and the generation config. The students (`--student encdec`) and the SVAMP teacher of
    benchmarks/distill_quality.py are built here.
    """
    from transformers import EncoderDecoderModel

    torch.manual_seed(seed)
    kwargs = {f"encoder_{k}": v for k, v in _layers_kwargs(encoder_layers, encoder).items()}
    kwargs.update({f"decoder_{k}": v for k, v in _layers_kwargs(decoder_layers, decoder).items()})
    try:
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(encoder, decoder, **kwargs)
    except OSError as exc:
        raise ValueError(f"--checkpoint {encoder!r} / --decoder-checkpoint {decoder!r}: not loadable ({exc})") from exc
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.pad_token_id
    eos = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    for conf in (model.config, model.generation_config):
        conf.decoder_start_token_id = start
        conf.pad_token_id = tokenizer.pad_token_id
        conf.eos_token_id = eos
    return model


def build_encdec(cfg: TrainConfig, tokenizer, seed: int):
    """The `encdec` student: warm_start_encdec from --checkpoint / --decoder-checkpoint, --student-layers each."""
    return warm_start_encdec(cfg.checkpoint, cfg.decoder_checkpoint or cfg.checkpoint, tokenizer,
                             encoder_layers=cfg.student_layers, decoder_layers=cfg.student_layers, seed=seed)


def sequence_scores(model, tokenizer, inputs: list[str], choices: list[list[str]], cfg: TrainConfig, device):
    """Sum of token log-probs of each choice string given its input: [B, C] (C = max choices; padded -inf-free 0s)."""
    from .train import encode_pairs

    flat_in = [x for x, cs in zip(inputs, choices) for _ in cs]
    flat_out = [c for cs in choices for c in cs]
    ids, mask, labels = encode_pairs(tokenizer, flat_in, flat_out, cfg, device)
    logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
    logp = F.log_softmax(logits.float(), dim=-1)
    keep = labels != -100
    tok = logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1).masked_fill(~keep, 0.0).sum(-1)
    width = max(len(cs) for cs in choices)
    out = torch.zeros(len(choices), width, device=device)
    k = 0
    for r, cs in enumerate(choices):
        out[r, :len(cs)] = tok[k:k + len(cs)]
        k += len(cs)
    return out


@dataclass
class Seq2SeqKind:
    cfg: TrainConfig
    tokenizer: object

    def build(self, seed: int):
        from .presets import build_student

        if self.cfg.student == "encdec":
            return build_encdec(self.cfg, self.tokenizer, seed)
        return build_student(self.cfg.student, self.tokenizer, seed=seed)

    def loss(self, model, batch: list[Example], a: float, kd_weight: float, device) -> tuple[torch.Tensor, dict]:
        from .train import step_loss

        if kd_weight <= 0:
            return step_loss(model, self.tokenizer, batch, a, self.cfg, device)
        rows = [e for e in batch if e.answer_choices and sum(e.answer_probs) > 0]
        if not rows:
            return step_loss(model, self.tokenizer, batch, a, self.cfg, device)
        # split the label term: (1 - w) * CE + w * KD, then the DSS rationale term as usual
        from .train import task_loss

        ce = task_loss(model, self.tokenizer, [e.predict_input for e in batch], [e.label for e in batch], self.cfg, device)
        scores = sequence_scores(model, self.tokenizer, [e.predict_input for e in rows],
                                 [list(e.answer_choices) for e in rows], self.cfg, device)
        width = scores.shape[1]
        probs = torch.tensor([[float(p) for p in e.answer_probs] + [0.0] * (width - len(e.answer_probs)) for e in rows],
                             device=device)
        probs = probs / probs.sum(-1, keepdim=True)
        valid = torch.tensor([[i < len(e.answer_choices) for i in range(width)] for e in rows], device=device)
        kd = kd_loss(scores, probs, valid, self.cfg.kd_temperature)
        label_term = (1.0 - kd_weight) * ce + kd_weight * kd
        parts = {"label_loss": float(ce.detach()), "kd_loss": float(kd.detach())}
        if a >= 1.0:
            return label_term, parts
        with_rationale = [e for e in batch if e.rationale]
        if not with_rationale:
            return a * label_term, parts
        rat = task_loss(model, self.tokenizer, [e.explain_input for e in with_rationale],
                        [e.rationale for e in with_rationale], self.cfg, device)
        parts["rationale_loss"] = float(rat.detach())
        return a * label_term + (1.0 - a) * rat, parts

    def predict(self, model, examples: list[Example], device, autocast) -> list[str]:
        return generate_answers(model, self.tokenizer, [e.predict_input for e in examples],
                                max_input_tokens=self.cfg.max_input_tokens, max_new_tokens=self.cfg.max_target_tokens,
                                batch_size=self.cfg.eval_batch_size, device=device, autocast=autocast)

    def eval_loss(self, model, examples: list[Example], device, autocast) -> float:
        from .train import task_loss_eval

        return task_loss_eval(model, self.tokenizer, examples, self.cfg, device, autocast)

    def validate(self, model, examples: list[Example], device, autocast) -> tuple[float, list[str]]:
        """(teacher-forced label loss, generated answers): two passes, since generation cannot give the loss."""
        return self.eval_loss(model, examples, device, autocast), self.predict(model, examples, device, autocast)


def student_kind(cfg: TrainConfig, tokenizer, data: Data | None = None):
    """The kind object for cfg.student (extractive needs the training rows to fix its label space)."""
    if cfg.student == "extractive":
        if data is None:
            raise ValueError("the extractive student needs the training rows to fix its label space")
        return ExtractiveKind(cfg, tokenizer, label_space(data.train))
    return Seq2SeqKind(cfg, tokenizer)


def load_student(directory):
    """A saved student of any kind from runs/<id>/model (or any save_pretrained directory)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, EncoderDecoderModel

    directory = Path(directory)
    if (directory / META_FILE).exists():
        meta = json.loads((directory / META_FILE).read_text())
        if meta["label_mode"] == "choices" and meta.get("choice_scoring") not in ("pairs", "spans"):
            raise ValueError(f"{directory}: a choices-mode extractive student saved before pairwise choice scoring "
                             "(its head classifies positions); retrain it with this version")
        model = ExtractiveStudent(AutoModel.from_pretrained(str(directory)), meta)
        heads = torch.load(directory / HEADS_FILE, map_location="cpu", weights_only=True)
        model.classify.load_state_dict(heads["classify"])
        model.tag.load_state_dict(heads["tag"])
        return model.eval()
    if AutoConfig.from_pretrained(str(directory)).model_type == "encoder-decoder":
        return EncoderDecoderModel.from_pretrained(str(directory)).eval()
    return AutoModelForSeq2SeqLM.from_pretrained(str(directory)).eval()
