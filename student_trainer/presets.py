"""Students: a size preset built from a T5 config (random weights, CPU-sized) or a HF seq2seq model.

    tok = build_tokenizer(data.texts())              # word-level, whitespace split, from the rows
    model = build_student("tiny", tok, seed=0)       # T5ForConditionalGeneration from PRESETS["tiny"]
    model = build_student("google/t5-v1_1-small", tok)   # any AutoModelForSeq2SeqLM id or path

Presets (T5 shapes; d_kv = d_model / heads, d_ff as given, dropout 0.1):
    tiny   d_model 64,  2+2 layers, 2 heads, d_ff 256    (~0.2M params + vocab x 64)
    small  d_model 256, 4+4 layers, 4 heads, d_ff 1024   (~5M params + vocab x 256)
The word-level tokenizer splits on whitespace only, so SVAMP equations such as "( 10.0 * 45.0 )"
round-trip exactly; specials <pad>=0 </s>=1 <unk>=2 and "$A </s>" like T5.
"""
from __future__ import annotations

from pathlib import Path

PRESETS: dict[str, dict] = {
    "tiny": dict(d_model=64, num_layers=2, num_heads=2, d_ff=256),
    "small": dict(d_model=256, num_layers=4, num_heads=4, d_ff=1024),
}


def is_preset(student: str) -> bool:
    return student in PRESETS


def build_tokenizer(texts: list[str], max_length: int = 512):
    """A word-level PreTrainedTokenizerFast over every whitespace-separated word in `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in sorted({w for t in texts if t for w in t.split()}):
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length,
                                   pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path)
    except OSError as exc:
        raise ValueError(f"--tokenizer {name_or_path!r} could not be loaded ({exc}); give a local path or an "
                         "id present in the Hugging Face cache (HF_HUB_OFFLINE=1 here)") from exc
    if tok.pad_token is None:
        raise ValueError(f"--tokenizer {name_or_path!r} has no pad token; pick a tokenizer with one")
    return tok


def build_student(student: str, tokenizer, *, seed: int = 0):
    """A seq2seq student: a PRESETS entry built from a config with `seed`, else from_pretrained(student)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration

    if is_preset(student):
        shape = PRESETS[student]
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        config = T5Config(
            vocab_size=len(tokenizer), d_kv=shape["d_model"] // shape["num_heads"], dropout_rate=0.1,
            num_decoder_layers=shape["num_layers"], pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos, decoder_start_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, **shape)
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    else:
        path = Path(student)
        try:
            model = AutoModelForSeq2SeqLM.from_pretrained(str(path) if path.exists() else student)
        except OSError as exc:
            raise ValueError(f"--student {student!r}: not a preset ({', '.join(PRESETS)}) and not loadable "
                             f"as a seq2seq model ({exc})") from exc
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.generation_config.decoder_start_token_id = model.config.decoder_start_token_id
    return model


def tokenizer_for(student: str, tokenizer: str | None, texts: list[str], saved: Path | None = None,
                  checkpoint: str | None = None):
    """The tokenizer of a run: a resumed run's saved one, --tokenizer, the checkpoint's or student's own, or a
    word-level one built from `texts` (the training rows only)."""
    if saved is not None and (saved / "tokenizer.json").exists():
        return load_tokenizer(str(saved))
    if tokenizer:
        return load_tokenizer(tokenizer)
    if checkpoint:
        return load_tokenizer(checkpoint)
    if not is_preset(student):
        return load_tokenizer(student)
    return build_tokenizer(texts)
