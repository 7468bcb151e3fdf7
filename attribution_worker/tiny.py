"""Tiny teachers built from configs (no downloads): for tests, benchmarks, Ray job tests.

    from attribution_worker.tiny import build_tiny_teacher, train_tiny_teacher
    path = build_tiny_teacher(tmp / "t5", kind="seq2seq", texts=["the cat sat", "a dog ran"])
    # -> a directory loadable by AutoTokenizer / AutoModelForSeq2SeqLM .from_pretrained(path)

build_tiny_teacher(path, *, kind="seq2seq", texts, d_model=32, layers=2, heads=2, seed=0, labels=None, **config_overrides) -> Path
    Trains a word-level tokenizer on `texts` (plus every prompt template's words, so template text is
    never <unk>), builds a model from a config with random weights, and save_pretrained()s both:
      kind="seq2seq"     T5ForConditionalGeneration; specials <pad>=0 </s>=1 <unk>=2; "$A </s>"
      kind="causal"      GPT2LMHeadModel; specials <pad>=0 <|endoftext|>=1 <unk>=2; no specials added
      kind="classifier"  BertForSequenceClassification with `labels` (id2label in that order);
                         specials [PAD]=0 [UNK] [CLS] [SEP] [MASK]; "[CLS] $A [SEP]"
      kind="multiple_choice"  BertForMultipleChoice (scores (question, choice) pairs), same tokenizer
    The pre-tokenizer splits words from punctuation ("(a)" -> "(", "a", ")"), so some input words
    are several tokens: the word aggregation in units.py is exercised even on tiny models.
train_tiny_teacher(path, pairs, *, template="generic", ...) -> dict   (tiny_train.py)
    Fits a teacher saved by build_tiny_teacher on (input, target) pairs and saves it in place.
"""
from __future__ import annotations

import json
from pathlib import Path

from .templates import TEMPLATES

KINDS = ("seq2seq", "causal", "classifier", "multiple_choice")

_SPECIALS = {
    "seq2seq": {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"},
    "causal": {"pad_token": "<pad>", "eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "unk_token": "<unk>"},
    "classifier": {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"},
}
_SPECIALS["multiple_choice"] = _SPECIALS["classifier"]  # BERT style; pairs "[CLS] question [SEP] choice [SEP]"


def _vocab(kind: str, texts: list[str]) -> dict[str, int]:
    from tokenizers import pre_tokenizers

    pre = pre_tokenizers.Whitespace()
    specials = list(dict.fromkeys(_SPECIALS[kind].values()))
    words: dict[str, None] = {}
    for text in list(texts) + [t.replace("{input}", " ") for t in TEMPLATES.values()]:
        for word, _ in pre.pre_tokenize_str(text):
            words.setdefault(word, None)
    vocab = {tok: i for i, tok in enumerate(specials)}
    for word in sorted(words):
        vocab.setdefault(word, len(vocab))
    return vocab


def build_tokenizer(kind: str, texts: list[str]):
    """A word-level fast tokenizer over `texts` (a transformers tokenizer, ready for save_pretrained)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: use one of {', '.join(KINDS)}")
    specials = _SPECIALS[kind]
    vocab = _vocab(kind, texts)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=specials["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if kind == "seq2seq":
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    elif kind in ("classifier", "multiple_choice"):
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",  # BERT's segment ids
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins word-level tokens with spaces
    padding_side = "left" if kind == "causal" else "right"
    names = {"model_input_names": ["input_ids", "token_type_ids", "attention_mask"]} if kind == "multiple_choice" else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side=padding_side, model_max_length=512, **names,
                                   **specials)


def _config(kind: str, vocab_size: int, tokenizer, d_model: int, layers: int, heads: int, labels, overrides: dict):
    if kind == "seq2seq":
        from transformers import T5Config

        return T5Config(**{
            "vocab_size": vocab_size, "d_model": d_model, "d_kv": max(1, d_model // heads), "d_ff": 4 * d_model,
            "num_layers": layers, "num_decoder_layers": layers, "num_heads": heads, "dropout_rate": 0.1,
            "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
            "decoder_start_token_id": tokenizer.pad_token_id, "feed_forward_proj": "relu", "tie_word_embeddings": True,
            **overrides})
    if kind == "causal":
        from transformers import GPT2Config

        return GPT2Config(**{
            "vocab_size": vocab_size, "n_embd": d_model, "n_layer": layers, "n_head": heads, "n_positions": 512,
            "bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id, **overrides})
    from transformers import BertConfig

    if kind == "multiple_choice":
        return BertConfig(**{
            "vocab_size": vocab_size, "hidden_size": d_model, "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": 4 * d_model, "max_position_embeddings": 512, "pad_token_id": tokenizer.pad_token_id,
            **overrides})
    if not labels:
        raise ValueError("kind='classifier' needs labels=[...] (the class names, in id order)")
    return BertConfig(**{
        "vocab_size": vocab_size, "hidden_size": d_model, "num_hidden_layers": layers, "num_attention_heads": heads,
        "intermediate_size": 4 * d_model, "max_position_embeddings": 512, "num_labels": len(labels),
        "id2label": {i: str(l) for i, l in enumerate(labels)}, "label2id": {str(l): i for i, l in enumerate(labels)},
        "pad_token_id": tokenizer.pad_token_id, **overrides})


def build_tiny_teacher(
    path, *, kind: str = "seq2seq", texts: list[str], d_model: int = 32, layers: int = 2, heads: int = 2,
    seed: int = 0, labels: list[str] | None = None, **config_overrides,
) -> Path:
    """Build and save a random-weight teacher of `kind` whose vocabulary covers `texts`; returns the path.

    config_overrides go to the model config (e.g. vocab_size=32128, d_ff=2048 for a T5-small shape;
    a vocab_size larger than the tokenizer's just adds unused rows).
    """
    import torch
    from transformers import (AutoModelForCausalLM, AutoModelForMultipleChoice, AutoModelForSeq2SeqLM,
                              AutoModelForSequenceClassification)

    if d_model % heads:
        raise ValueError(f"d_model={d_model} must be a multiple of heads={heads}")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = Path(path)
    tokenizer = build_tokenizer(kind, texts)
    config = _config(kind, len(tokenizer), tokenizer, d_model, layers, heads, labels, config_overrides)
    torch.manual_seed(seed)
    auto = {"seq2seq": AutoModelForSeq2SeqLM, "causal": AutoModelForCausalLM, "classifier": AutoModelForSequenceClassification,
            "multiple_choice": AutoModelForMultipleChoice}[kind]
    model = auto.from_config(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "salient_tiny.json").write_text(json.dumps({"kind": kind, "d_model": d_model, "layers": layers,
                                                        "heads": heads, "seed": seed, "labels": labels}))
    return path
