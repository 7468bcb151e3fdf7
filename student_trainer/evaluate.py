"""Scoring students: exact match, and SVAMP equations evaluated numerically (as DSS does).

    accuracy(["( 10.0 * 45.0 )"], ["( 10.0 * 45.0 )"], scorer="equation")   # 1.0
    eval_equation("( 10.0 - ( 6.0 + 3.0 ) )")                               # 1.0
    predict(model, tokenizer, ["predict: ..."], max_new_tokens=64)           # greedy strings

DSS (Hsieh et al. 2023, google-research/distilling-step-by-step `metrics.py`) scores SVAMP by
`eval()` of the predicted and gold equations and compares the values. Here the equation is parsed
with `ast` and only numbers, + - * / // % ** (exponent capped) and unary +/- are evaluated; anything
else (names, calls, attributes, huge powers) scores as wrong -- no Python eval. A WordPiece
tokenizer decodes "84.0" as "84. 0" (BERT2BERT students and teachers); such split decimals are
joined back before parsing.
"""
from __future__ import annotations

import ast
import math
import operator
import re

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPONENT = 64
MAX_CHARS = 512
_SPLIT_DECIMAL = re.compile(r"(\d)\s*\.\s+(\d)")  # "84. 0" (a WordPiece decode) -> "84.0"


def eval_equation(text: str) -> float | None:
    """The value of an arithmetic expression, or None when it is not one (or divides by zero)."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHARS:
        return None
    text = _SPLIT_DECIMAL.sub(r"\1.\2", text.strip())
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return None

    def ev(node) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
                raise ValueError("exponent too large")
            return float(_BINOPS[type(node.op)](left, right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return float(_UNARY[type(node.op)](ev(node.operand)))
        raise ValueError(f"not arithmetic: {type(node).__name__}")

    try:
        value = ev(tree)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return value if math.isfinite(value) else None


def equation_match(pred: str, gold: str, rel_tol: float = 1e-6, abs_tol: float = 1e-6) -> bool:
    """DSS SVAMP scoring: both equations evaluate, and to the same number."""
    p, g = eval_equation(pred), eval_equation(gold)
    return p is not None and g is not None and math.isclose(p, g, rel_tol=rel_tol, abs_tol=abs_tol)


def normalize(text: str | None) -> str:
    return " ".join(str(text or "").lower().split())


def exact_match(pred: str, gold: str) -> bool:
    return normalize(pred) == normalize(gold)


def accuracy(preds: list[str], golds: list[str], scorer: str = "exact") -> float:
    """Share of matches; scorer: exact | equation."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} targets")
    if not golds:
        return float("nan")
    match = equation_match if scorer == "equation" else exact_match
    return sum(match(p, g) for p, g in zip(preds, golds)) / len(golds)


def predict(model, tokenizer, inputs: list[str], *, max_input_tokens: int = 256, max_new_tokens: int = 64,
            batch_size: int = 64, device=None, autocast=None) -> list[str]:
    """Greedy generations for `inputs` (the `predict:` prompts), in order."""
    import contextlib

    import torch

    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        with torch.no_grad(), (autocast or contextlib.nullcontext)():
            for i in range(0, len(inputs), batch_size):
                enc = tokenizer(inputs[i:i + batch_size], truncation=True, max_length=max_input_tokens,
                                padding=True, return_tensors="pt").to(device)
                enc.pop("token_type_ids", None)
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
                out += tokenizer.batch_decode(gen, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return [o.strip() for o in out]


def teacher_accuracy(examples, scorer: str) -> float | None:
    """Accuracy of the teacher's stored answers (teacher_output) against gold, when rows have them."""
    pairs = [(e.teacher_output, e.gold) for e in examples if e.teacher_output is not None]
    if not pairs:
        return None
    return accuracy([p for p, _ in pairs], [g for _, g in pairs], scorer)
