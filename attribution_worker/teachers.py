"""Loading a teacher and the one quantity every method explains: log p(answer | input embeddings).

    teacher = load_teacher("google/flan-t5-small")         # or a local path (tiny.py builds some)
    ids, offsets, special = teacher.encode("question: ...")
    embeds = teacher.embed(input_ids)                        # [B, L, D], the encoder's inputs_embeds
    logp = teacher.logp(embeds, attention_mask, ans_ids, ans_mask)   # [B] float32

Kinds (picked from the config's architecture through the Auto classes):
  seq2seq     AutoModelForSeq2SeqLM (T5, FLAN-T5, BART, and a warm-started BERT2BERT
              EncoderDecoderModel). Input right-padded; the answer is teacher-forced on the decoder
              (decoder_start + answer[:-1]); logp is summed over answer tokens (the closing </s>
              included: the answer is complete). With a BERT tokenizer (no eos) the answer is
              "x [SEP]": its leading [CLS] is dropped when the decoder starts from [CLS] already,
              and [SEP] is the eos.
  causal      AutoModelForCausalLM (GPT-2, Llama, Qwen). Prompt left-padded, answer ids appended
              (never re-tokenised text), explicit position ids so padding changes nothing.
  classifier  AutoModelForSequenceClassification (BERT style). The answer is one class id;
              logp = log_softmax(logits)[class].
  multiple_choice  AutoModelForMultipleChoice (an encoder scoring each "[CLS] question [SEP]
              choice [SEP]" pair). The input is the question; the answer packs the chosen index
              and every choice's token ids (pack_choices), so every method treats it as an opaque
              answer like the other kinds; logp = log_softmax over the choices' logits [chosen],
              and the gradient reaches the question's words through every pair.
Gradients are taken w.r.t. the encoder's `inputs_embeds` (DESIGN.md: hooking T5's shared
embedding would also attribute decoder tokens). Parameters are frozen, the model is in eval mode
(no dropout), log-softmax is computed in float32. On CUDA the weights are cast to bf16
(dtype="auto" or "bf16": half the memory and bandwidth of fp32, no autocast copies); embeddings
handed to the methods stay float32 and are cast to the weights' dtype at the model's input, so
IG interpolation and gradient sums are float32. On the CPU everything is float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from .batching import pad

KINDS = ("seq2seq", "causal", "classifier", "multiple_choice")


@runtime_checkable
class Teacher(Protocol):
    """The seam the engine and the methods code against (STYLE.md 7): HFTeacher implements it for
    every Hugging Face kind; `AttributionEngine(config, teacher=...)` takes any implementation (the
    tests' hand-computable LinearTeacher implements the forward-scoring part)."""

    name: str
    kind: str  # seq2seq | causal | classifier | multiple_choice
    device: torch.device
    max_input_tokens: int
    pad_id: int
    eos_id: int | None
    mask_id: int
    padding_side: str

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]], list[int]]: ...
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor: ...
    def logp(self, embeds, attention_mask, ans_ids, ans_mask) -> torch.Tensor: ...
    def answer_ids(self, text: str, input_text: str = "") -> list[int]: ...
    def answer_tensors(self, answers: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]: ...
    def generate(self, input_ids, attention_mask, max_new_tokens: int) -> list[list[int]]: ...
    def class_logprobs(self, input_ids, attention_mask) -> torch.Tensor: ...
    def choice_ids(self, text: str) -> list[int]: ...
    def choice_logprobs(self, input_ids, attention_mask, choices) -> torch.Tensor: ...
    def labels(self) -> list[str]: ...
    def decode(self, ids: list[int]) -> str: ...


def pack_choices(chosen: int, choices: list[list[int]]) -> list[int]:
    """A multiple-choice answer as one id list: [chosen, n, len_1, *ids_1, ..., len_n, *ids_n]."""
    out = [chosen, len(choices)]
    for ids in choices:
        out += [len(ids), *ids]
    return out


def unpack_choices(packed: list[int]) -> tuple[int, list[list[int]]]:
    chosen, n, pos, choices = packed[0], packed[1], 2, []
    for _ in range(n):
        k = packed[pos]
        choices.append(packed[pos + 1: pos + 1 + k])
        pos += 1 + k
    return chosen, choices


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def detect_kind(config) -> str:
    """seq2seq | causal | classifier from a transformers config (architectures first, then flags)."""
    archs = " ".join(getattr(config, "architectures", None) or [])
    if "ForMultipleChoice" in archs:
        return "multiple_choice"
    if "ForSequenceClassification" in archs:
        return "classifier"
    if getattr(config, "is_encoder_decoder", False) or "ConditionalGeneration" in archs:
        return "seq2seq"
    if "CausalLM" in archs or "LMHead" in archs:
        return "causal"
    if getattr(config, "model_type", "") in ("bert", "roberta", "distilbert", "deberta", "deberta-v2", "electra"):
        return "classifier"
    return "causal"


@dataclass
class HFTeacher:
    """A Hugging Face model + fast tokenizer behind the Teacher protocol (all three kinds)."""

    name: str
    kind: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    dtype: str
    max_input_tokens: int

    def __post_init__(self):
        tok = self.tokenizer
        if tok.pad_token_id is None:  # GPT-2 style tokenizers ship without one
            tok.pad_token = tok.eos_token or tok.unk_token
        self.pad_id = int(tok.pad_token_id)
        self.eos_id = tok.eos_token_id
        if self.eos_id is None and self.kind == "seq2seq":  # BERT2BERT: a BERT tokenizer ends a sequence with [SEP]
            self.eos_id = tok.sep_token_id
        # occlusion replaces a word's tokens with this id: [MASK] where the vocabulary has one, else pad
        self.mask_id = int(tok.mask_token_id) if getattr(tok, "mask_token_id", None) is not None else self.pad_id
        self.padding_side = "left" if self.kind == "causal" else "right"
        self._embedding = (self.model.get_encoder() if self.kind == "seq2seq" else self.model).get_input_embeddings()

    # ------------------------------------------------------------------ text
    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]], list[int]]:
        """(ids, character offsets into text, special-token flags) with the model's special tokens."""
        enc = self.tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True, add_special_tokens=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]], list(enc["special_tokens_mask"])

    def answer_ids(self, text: str, input_text: str = "") -> list[int]:
        """Token ids of a given answer (gold target or a choice) as the teacher would emit it."""
        tok = self.tokenizer
        if self.kind == "multiple_choice":
            raise ValueError("a multiple-choice teacher's answer is one of the row's choices (pack_choices), not text")
        if self.kind == "classifier":
            label2id = {str(k).lower(): int(v) for k, v in (self.model.config.label2id or {}).items()}
            key = str(text).strip().lower()
            if key not in label2id:
                raise ValueError(f"answer {text!r} is not one of the teacher's labels {sorted(label2id)}")
            return [label2id[key]]
        if self.kind == "seq2seq":
            ids = list(tok(text, add_special_tokens=True)["input_ids"])
            start = getattr(self.model.config, "decoder_start_token_id", None)
            # BERT2BERT: "[CLS] x [SEP]" -> "x [SEP]", as decoding starts from [CLS] already (BART's <s> stays:
            # its decoder starts from </s>)
            return ids[1:] if start is not None and len(ids) > 1 and ids[0] == start == tok.cls_token_id else ids
        sep = "" if (not input_text or input_text[-1].isspace()) else " "
        ids = list(tok(sep + text, add_special_tokens=False)["input_ids"])
        return ids + ([self.eos_id] if self.eos_id is not None else [])

    def decode(self, ids: list[int]) -> str:
        """Answer text; an answer made only of special tokens (e.g. pad) is shown with them, never as ''."""
        if self.kind == "classifier":
            id2label = self.model.config.id2label or {}
            return str(id2label.get(ids[0], id2label.get(str(ids[0]), ids[0])))
        text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return text or self.tokenizer.decode(ids, skip_special_tokens=False).strip()

    # ------------------------------------------------------------------ tensors
    @property
    def model_dtype(self) -> torch.dtype:
        """The weights' dtype: bfloat16 for dtype="bf16" (CUDA), else float32."""
        return torch.bfloat16 if self.dtype == "bf16" else torch.float32

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, L] ids -> [B, L, D] input embeddings (what inputs_embeds receives), no grad."""
        with torch.no_grad():
            return self._embedding(input_ids.to(self.device)).float()

    def logp(self, embeds: torch.Tensor, attention_mask: torch.Tensor, ans_ids: torch.Tensor, ans_mask: torch.Tensor) -> torch.Tensor:
        """log p(answer | inputs_embeds), summed over answer tokens: [B] float32.

        embeds [B, L, D]; attention_mask [B, L]; ans_ids, ans_mask [B, A] (right-padded; for a
        classifier A = 1 and ans_ids holds the class id).
        """
        embeds = embeds.to(self.model_dtype)  # float32 from the methods; a no-op on the CPU
        if self.kind == "classifier":
            logits = self.model(inputs_embeds=embeds, attention_mask=attention_mask).logits.float()
            return torch.log_softmax(logits, -1).gather(1, ans_ids[:, :1]).squeeze(1)
        if self.kind == "multiple_choice":
            packed = [ans_ids[b, : int(ans_mask[b].sum())].tolist() for b in range(ans_ids.shape[0])]
            chosen, choices = zip(*[unpack_choices(p) for p in packed])
            lp = torch.log_softmax(self._choice_logits(embeds, attention_mask, list(choices)), -1)
            return lp.gather(1, torch.tensor(chosen, device=lp.device).unsqueeze(1)).squeeze(1)
        if self.kind == "seq2seq":
            start = self.model.config.decoder_start_token_id
            start = self.pad_id if start is None else int(start)
            dec = torch.cat([torch.full_like(ans_ids[:, :1], start), ans_ids[:, :-1]], dim=1)
            dec = dec.masked_fill(dec < 0, self.pad_id)
            logits = self.model(inputs_embeds=embeds, attention_mask=attention_mask,
                                decoder_input_ids=dec, decoder_attention_mask=ans_mask).logits.float()
        else:  # causal: prompt (left-padded) + answer (right-padded)
            ans_embeds = self._embedding(ans_ids).to(embeds.dtype)
            full = torch.cat([embeds, ans_embeds], dim=1)
            full_mask = torch.cat([attention_mask, ans_mask], dim=1)
            positions = (full_mask.cumsum(1) - 1).clamp(min=0)
            out = self.model(inputs_embeds=full, attention_mask=full_mask, position_ids=positions).logits
            p = embeds.shape[1]
            logits = out[:, p - 1: p - 1 + ans_ids.shape[1]].float()
        tok_logp = torch.log_softmax(logits, -1).gather(2, ans_ids.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (tok_logp * ans_mask.to(tok_logp.dtype)).sum(1)

    def class_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Classifier teachers: log_softmax over the labels, [B, n_labels] float32 (no grad)."""
        with torch.no_grad():
            logits = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device)).logits
        return torch.log_softmax(logits.float(), -1)

    def choice_ids(self, text: str) -> list[int]:
        """Multiple-choice teachers: a choice's token ids (no special tokens)."""
        return list(self.tokenizer(str(text), add_special_tokens=False)["input_ids"])

    def choice_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        choices: list[list[list[int]]]) -> torch.Tensor:
        """Multiple-choice teachers: log_softmax over each row's choices, [B, max choices] (-inf pads), no grad."""
        with torch.no_grad():
            logits = self._choice_logits(self.embed(input_ids).to(self.model_dtype), attention_mask.to(self.device), choices)
        return torch.log_softmax(logits.float(), -1)

    def _choice_logits(self, embeds: torch.Tensor, attention_mask: torch.Tensor,
                       choices: list[list[list[int]]]) -> torch.Tensor:
        """[B, C] logits of "[CLS] question [SEP] choice [SEP]" pairs built at the embedding level
        (the question's embeddings are the ones being attributed); missing choices get -inf."""
        sep = self.tokenizer.sep_token_id
        b_size, n_choices = embeds.shape[0], max(len(c) for c in choices)
        lengths = attention_mask.sum(1).tolist()
        width = max(int(n) + max(len(t) for t in ch) + 1 for n, ch in zip(lengths, choices))
        seqs, masks, types = [], [], []
        for b in range(b_size):
            q = embeds[b, : int(lengths[b])]
            for c in range(n_choices):
                toks = (choices[b][c] if c < len(choices[b]) else []) + [sep]
                tail = self._embedding(torch.tensor(toks, device=embeds.device)).to(embeds.dtype)
                pair = torch.cat([q, tail])
                fill = width - pair.shape[0]
                seqs.append(torch.cat([pair, pair.new_zeros(fill, pair.shape[1])]))
                masks.append([1] * pair.shape[0] + [0] * fill)
                types.append([0] * q.shape[0] + [1] * len(toks) + [0] * fill)
        dev = embeds.device
        x = torch.stack(seqs).view(b_size, n_choices, width, -1)
        mask = torch.tensor(masks, device=dev).view(b_size, n_choices, width)
        tt = torch.tensor(types, device=dev).view(b_size, n_choices, width)
        logits = self.model(inputs_embeds=x, attention_mask=mask, token_type_ids=tt).logits.float()
        missing = torch.tensor([[c >= len(ch) for c in range(n_choices)] for ch in choices], device=dev)
        return logits.masked_fill(missing, float("-inf"))

    def labels(self) -> list[str]:
        """Classifier teachers: the label names in id order."""
        id2label = self.model.config.id2label or {}
        return [str(id2label.get(i, id2label.get(str(i), i))) for i in range(self.model.config.num_labels)]

    def answer_tensors(self, answers: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad(answers, self.pad_id, "right", self.device)

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int) -> list[list[int]]:
        """The teacher's greedy answer per row: exactly the generated token ids, up to and including the
        first eos (what follows it in a batch is fill). A teacher that greedily emits its pad token
        (a seq2seq model whose pad id is also the decoder start) keeps those ids: their log p is
        what is explained, and `decode` shows them."""
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        with torch.no_grad():
            if self.kind == "classifier":
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
                return [[int(i)] for i in logits.argmax(-1).tolist()]
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                do_sample=False, num_beams=1, pad_token_id=self.pad_id,
            )
        out = out[:, 1:] if self.kind == "seq2seq" else out[:, input_ids.shape[1]:]
        answers = []
        for row in out.tolist():
            ids = []
            for t in row:
                ids.append(t)
                if t == self.eos_id:
                    break
            answers.append(ids)  # pad ids before eos / the length limit were generated: they stay
        return answers


def load_teacher(name: str, *, device: str | None = None, dtype: str = "auto", max_input_tokens: int | None = None) -> HFTeacher:
    """Load `name` (HF id or local path) once: eval mode, parameters frozen, on the chosen device."""
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForMultipleChoice, AutoModelForSeq2SeqLM,
                              AutoModelForSequenceClassification, AutoTokenizer)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    dev = pick_device(device)
    if dtype == "auto":
        dtype = "bf16" if dev.type == "cuda" else "fp32"
    config = AutoConfig.from_pretrained(name)
    kind = detect_kind(config)
    auto = {"seq2seq": AutoModelForSeq2SeqLM, "causal": AutoModelForCausalLM,
            "classifier": AutoModelForSequenceClassification, "multiple_choice": AutoModelForMultipleChoice}[kind]
    model = auto.from_pretrained(name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(name)
    if not getattr(tokenizer, "is_fast", True):
        raise ValueError(f"teacher {name!r} has no fast tokenizer: character offsets need one (tokenizer.json)")
    model.eval().to(dev, dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)  # bf16 weights on CUDA
    for p in model.parameters():
        p.requires_grad_(False)
    limit = max_input_tokens or _model_max(config, tokenizer)
    return HFTeacher(name=name, kind=kind, model=model, tokenizer=tokenizer, device=dev, dtype=dtype, max_input_tokens=limit)


def _model_max(config, tokenizer) -> int:
    for attr in ("n_positions", "max_position_embeddings"):
        v = getattr(config, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tokenizer, "model_max_length", None)
    return v if isinstance(v, int) and 0 < v < 1_000_000 else 512  # T5: relative positions; 512 as trained
