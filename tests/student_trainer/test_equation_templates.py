"""SVAMP as template classification (student_trainer.equation_templates): a correct template is a correct answer."""
from __future__ import annotations

import json

import pytest

from student_trainer.equation_templates import equation_template, instantiate, mark_quantities, quantities
from student_trainer.evaluate import equation_match


def test_a_template_names_quantities_in_reading_order_and_ignores_operand_order():
    text = "Tom had 3 apples. He got 8 more and gave away 2.5"
    assert quantities(text) == [3.0, 8.0, 2.5]
    assert equation_template(text, "( 8.0 - 3.0 )") == "( n0 - n1 )"
    assert equation_template(text, "( 3.0 + 8.0 )") == equation_template(text, "( 8.0 + 3.0 )") == "( n0 + n1 )"
    assert equation_template(text, "( ( 3.0 + 8.0 ) - 2.5 )") == "( ( n0 + n1 ) - n2 )"
    assert mark_quantities(text) == "Tom had n0 3 apples. He got n1 8 more and gave away n2 2.5"


def test_instantiate_puts_the_larger_operand_first_under_minus_and_divide():
    text = "a box of 4 pens costs 12 dollars"
    assert instantiate("( n0 / n1 )", text) == "( 12.0 / 4.0 )"
    assert instantiate("( n0 - n1 )", text) == "( 12.0 - 4.0 )"
    assert instantiate("( n0 * n1 )", text) == "( 4.0 * 12.0 )"
    assert instantiate("( n0 - n2 )", text) is None  # the text has no third quantity


def test_no_template_where_the_round_trip_would_change_the_answer():
    text = "She had 3 sweets and ate 8"
    assert equation_template(text, "( 3.0 - 8.0 )") is None  # negative: the value order answers 5, not -5
    assert equation_template(text, "( 3.0 - 9.0 )") is None  # 9 is not a quantity of the text
    assert equation_template(text, "__import__('os').getcwd()") is None  # not arithmetic, and never evaluated
    assert equation_template(text, "( 3.0 +") is None
    assert equation_template("I had 1 pen", "( True + 1.0 )") is None  # a bool is not the quantity 1
    assert equation_template(text, "(" * 300 + "3.0" + ")" * 300) is None  # too long to be an equation


def test_svamp_problems_round_trip_to_their_gold_value(shared_datasets):
    rows = [json.loads(line) for line in (shared_datasets / "svamp" / "svamp_train.json").read_text().splitlines()]
    templates = [equation_template(r["input"], r["label"]) for r in rows]
    found = [(r, t) for r, t in zip(rows, templates) if t is not None]
    assert len(found) >= 780, f"only {len(found)} of {len(rows)} SVAMP problems have a template"
    assert all(equation_match(instantiate(t, r["input"]), r["label"]) for r, t in found)
    assert len({t for _, t in found}) < 80  # few shapes: a label space a classifier can learn


def test_benchmark_drops_training_problems_without_a_template_but_keeps_test_ones(dq):
    rows = [{"example_id": "a", "input": "had 3 and got 8", "target": "( 3.0 + 8.0 )"},
            {"example_id": "b", "input": "had 3 and got 8", "target": "( 3.0 * 9.0 )"}]
    said = []
    train = dq.svamp_templates(rows, "train", said.append)
    assert [(r["example_id"], r["input"], r["target"]) for r in train] == [("a", "had n0 3 and got n1 8", "( n0 + n1 )")]
    test = dq.svamp_templates(rows, "test", said.append)
    assert [r["target"] for r in test] == ["( n0 + n1 )", "( 3.0 * 9.0 )"]  # no template: never matched, so wrong
    assert said == ["  svamp train: 1 of 2 problems have a template; 1 dropped",
                    "  svamp test: 1 of 2 problems have a template"]


@pytest.mark.parametrize("flag, says", [
    ("--teacher-batch", "--teacher-batch must be at least 1 (examples per teacher step), got 0"),
    ("--teacher-micro-batch", "--teacher-micro-batch must be at least 1 (examples per forward pass), got 0"),
])
def test_benchmark_refuses_a_teacher_batch_below_one_before_any_work(dq, tmp_path, monkeypatch, capsys, flag, says):
    monkeypatch.setattr(dq, "SHARED", tmp_path / "no-datasets")  # past the check, the run would fail on reading
    with pytest.raises(SystemExit) as exit_:
        dq.main(["--task", "real", "--datasets", "svamp", "--svamp-task", "template", flag, "0",
                 "--store", str(tmp_path / "store")])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
