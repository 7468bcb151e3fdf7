"""Scoring: SVAMP equations evaluated numerically on the real DSS SVAMP targets; exact match."""
from __future__ import annotations

import json
import math

import pytest

from student_trainer.evaluate import accuracy, equation_match, eval_equation, exact_match


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_svamp_gold_equations_evaluate_to_the_answers(shared_datasets):
    """Every DSS target evaluates (ast, no eval) to SVAMP.json's Answer for the same problem.

    DSS split (SOURCE.md): np.random.RandomState(0).permutation(1000); first 800 train, last 200 test.
    One SVAMP record is mislabelled upstream: chal-680 has Equation "( ( 4.0 - 2.0 ) + 3.0 )" but
    Answer 1.0; it is the only mismatch, and the scorer (like DSS) compares equations, not Answer.
    """
    import numpy as np

    svamp = shared_datasets / "svamp"
    problems = json.loads((svamp / "SVAMP.json").read_text())
    perm = np.random.RandomState(seed=0).permutation(len(problems))
    mismatched = []
    for name, idx in (("svamp_train.json", perm[:800]), ("svamp_test.json", perm[800:])):
        rows = _jsonl(svamp / name)
        assert len(rows) == len(idx)
        for row, i in zip(rows, idx):
            problem = problems[int(i)]
            assert row["label"] == problem["Equation"].strip()
            value = eval_equation(row["label"])
            assert value is not None, row
            if not math.isclose(value, problem["Answer"], rel_tol=1e-6, abs_tol=1e-6):
                mismatched.append(problem["ID"])
    assert mismatched == ["chal-680"]


def test_svamp_scoring_compares_values_not_strings(shared_datasets):
    rows = _jsonl(shared_datasets / "svamp" / "svamp_test.json")
    gold = [r["label"] for r in rows]
    assert gold[0] == "( 10.0 * 45.0 )"
    same_value = ["( 45.0 * 10.0 )"] + gold[1:]           # commuted: still right
    wrong = ["( 10.0 + 45.0 )"] + ["garbage"] + gold[2:]  # two wrong
    assert accuracy(gold, gold, "equation") == 1.0
    assert accuracy(same_value, gold, "equation") == 1.0
    assert accuracy(same_value, gold, "exact") == pytest.approx(199 / 200)
    assert accuracy(wrong, gold, "equation") == pytest.approx(198 / 200)


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "x + 1", "(1).__class__", "9 ** 99999", "1 / 0", "", "( 3.0 +", "[1, 2]", "True + 1",
])
def test_unsafe_or_invalid_equations_score_wrong(text):
    assert eval_equation(text) is None
    assert not equation_match(text, "1.0")


def test_exact_match_normalises_case_and_space():
    assert exact_match("  Wooded   Area ", "wooded area")
    assert not exact_match("wooded", "wooded area")
    assert math.isnan(accuracy([], [], "exact"))
