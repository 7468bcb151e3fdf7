"""Math word problems as classification: an equation's template over the question's quantities.

    equation_template("They put 10 seeds in each bed. If there are 45 beds", "( 10.0 * 45.0 )")  # "( n0 * n1 )"
    instantiate("( n0 - n1 )", "Tom had 3 apples and got 8 more")                           # "( 8.0 - 3.0 )"
    mark_quantities("Tom had 3 apples and got 8 more")          # "Tom had n0 3 apples and got n1 8 more"

A classifier cannot write an equation, but it can pick one of the few shapes SVAMP's equations take
(Patel et al. 2021: one or two operations over the question's numbers). The question's quantities are
numbered in reading order (n0, n1, ...); an equation becomes the same tree over those names. Operands
are sorted, so a template names which quantities meet under which operation, not their order:
"( 8.0 - 3.0 )" and "( 3.0 + 8.0 )" over "... 3 ... 8 ..." are "( n0 - n1 )" and "( n0 + n1 )".
`instantiate` puts the order back by value: the larger operand first under - and / (SVAMP's answers
are positive). A template is kept only where that round trip gives the gold equation's value (789 of
SVAMP's 800 training problems), so a correct template is a correct answer. `mark_quantities` writes
each quantity's name before it in the input, so a student can see which number is n0.
"""
from __future__ import annotations

import ast
import itertools
import math
import re

from .evaluate import MAX_CHARS, eval_equation

QUANTITY = re.compile(r"\d+(?:\.\d+)?")
NAME = re.compile(r"n\d+")  # a quantity's name: n0, n1, ...
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def quantities(text: str) -> list[float]:
    """The numbers of `text` in reading order."""
    return [float(m) for m in QUANTITY.findall(text)]


def mark_quantities(text: str) -> str:
    """`text` with each number preceded by its name: "had 3 apples" -> "had n0 3 apples"."""
    names = itertools.count()
    return QUANTITY.sub(lambda m: f"n{next(names)} {m.group(0)}", text)


def _tree(text: str, leaf):
    """An expression of + - * / over numbers or names as nested (op, left, right) tuples; leaf(node) maps a leaf."""
    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return (_OPS[type(node.op)], walk(node.left), walk(node.right))
        return leaf(node)
    return walk(ast.parse(text, mode="eval"))


def _show(tree) -> str:
    return f"( {_show(tree[1])} {tree[0]} {_show(tree[2])} )" if isinstance(tree, tuple) else tree


def _sorted(tree):
    if not isinstance(tree, tuple):
        return tree
    left, right = sorted((_sorted(tree[1]), _sorted(tree[2])), key=_show)
    return (tree[0], left, right)


def equation_template(text: str, equation: str) -> str | None:
    """The template of `equation` over the quantities of `text`, or None where there is none: a number of the
    equation is not in the text, the equation is not + - * / over numbers, or the template's value-ordered
    instantiation does not give the equation's value."""
    if not isinstance(equation, str) or len(equation) > MAX_CHARS:
        return None
    values = quantities(text)

    def leaf(node):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):  # not True / False
            hits = [i for i, v in enumerate(values) if math.isclose(v, float(node.value))]
            if hits:
                return f"n{hits[0]}"
        raise ValueError("not a quantity of the text")

    try:
        template = _show(_sorted(_tree(equation, leaf)))
    except (SyntaxError, ValueError):
        return None
    gold, got = eval_equation(equation), eval_equation(instantiate(template, text) or "")
    return template if gold is not None and got is not None and math.isclose(gold, got, abs_tol=1e-6) else None


def instantiate(template: str, text: str) -> str | None:
    """The equation `template` stands for over the quantities of `text` (larger operand first under - and /),
    or None when the text lacks a quantity the template names."""
    values = quantities(text)

    def leaf(node):
        if isinstance(node, ast.Name) and NAME.fullmatch(node.id) and int(node.id[1:]) < len(values):
            return repr(values[int(node.id[1:])])
        raise ValueError(f"{ast.dump(node)} is not a quantity of the text")

    def ordered(tree):
        if not isinstance(tree, tuple):
            return tree
        left, right = ordered(tree[1]), ordered(tree[2])
        if tree[0] in "-/" and (eval_equation(_show(left)) or 0.0) < (eval_equation(_show(right)) or 0.0):
            left, right = right, left
        return (tree[0], left, right)

    try:
        return _show(ordered(_tree(template, leaf)))
    except (SyntaxError, ValueError):
        return None
