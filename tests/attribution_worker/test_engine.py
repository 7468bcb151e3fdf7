"""The engine's contract: row shape, answers explained, errors per row, config validation, units."""
from __future__ import annotations

import pytest

from attribution_worker.engine import AttributionConfig, AttributionEngine
from attribution_worker.methods import score_sequences
from attribution_worker.teachers import Teacher
from attribution_worker.templates import TEMPLATES, resolve_template, template_for_format
from attribution_worker.units import aggregate, top_k, word_units
from storage.schemas import PROVENANCE_COLUMNS, RATIONALE_COLUMNS, rationale_table

ENGINE_COLUMNS = set(RATIONALE_COLUMNS) - set(PROVENANCE_COLUMNS)


@pytest.mark.parametrize("kind", ["seq2seq", "causal", "classifier"])
def test_rows_have_the_rationale_columns_and_fit_the_schema(tiny_teachers, make_examples, kind):
    engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers[kind], k=2, template="nli", max_new_tokens=3))
    assert engine.teacher_name == tiny_teachers[kind]
    rows = make_examples(5)
    out = engine.attribute(rows)
    assert [r["example_id"] for r in out] == [r["example_id"] for r in rows]
    for row, ex in zip(out, rows):
        assert set(row) == ENGINE_COLUMNS
        assert row["error"] is None
        assert row["input_text"] == resolve_template("nli").render(ex["input"])[0]
        assert len(row["rationale"]) == min(2, len(row["tokens"]))
        rest = iter(row["tokens"])
        assert all(w in rest for w in row["rationale"]), "the rationale is a subsequence of the words (input order)"
        assert row["rationale_text"] == " ".join(row["rationale"])
        assert row["teacher_logprob"] <= 0
        assert row["comprehensiveness"] is not None and row["sufficiency"] is not None
    table = rationale_table(out, dataset="toy", split="test", job_id="j1", shard_index=0)
    assert table.num_rows == len(rows)


def test_choices_gold_and_teacher_answers(tiny_teachers, make_examples):
    rows = make_examples(4)
    teacher = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], template="cqa", max_new_tokens=3))
    out = teacher.attribute(rows)
    assert isinstance(teacher.teacher, Teacher)  # HFTeacher is the Teacher seam the engine codes against
    t = teacher.teacher
    for row, ex in zip(out, rows):
        if ex["choices"]:  # the best-scoring choice is explained: checked against an independent scoring
            p = teacher._prepare(0, ex)
            lp = score_sequences(t, [p.ids] * len(ex["choices"]), [t.answer_ids(c, p.input_text) for c in ex["choices"]], 10**6)
            assert row["teacher_output"] == ex["choices"][int(lp.argmax())]
        assert row["teacher_correct"] == (row["teacher_output"].lower() == ex["target"].lower())
    gold = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], template="cqa", target="gold"))
    for row, ex in zip(gold.attribute(rows), rows):
        assert row["teacher_output"] == ex["target"] and row["teacher_correct"] is None
    clf = AttributionEngine(AttributionConfig(teacher=tiny_teachers["classifier"], target="gold"))
    out = clf.attribute([dict(rows[0], target="neutral"), dict(rows[1], target="not-a-label")])
    assert out[0]["error"] is None and out[0]["teacher_output"] == "neutral"
    assert "not one of the teacher's labels" in out[1]["error"]


def test_bad_rows_come_back_with_an_error_and_do_not_fail_their_neighbours(tiny_teachers, make_examples):
    engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], max_input_tokens=40, target="gold"))
    good = make_examples(3)
    rows = [good[0], dict(good[1], input="   "), dict(good[1], input="the cat " * 30),
            dict(good[2], target=None), good[2], {"input": "the cat", "target": "cat"}]
    out = engine.attribute(rows)
    assert out[0]["error"] is None and out[4]["error"] is None and out[5]["error"] is None
    assert "no input text" in out[1]["error"]
    assert "tokens; the teacher reads at most 40" in out[2]["error"]
    assert "no target" in out[3]["error"]
    assert len(out[5]["example_id"]) == 16  # hash of the input when the row has no id
    rationale_table(out, dataset="toy", split="test", job_id="j", shard_index=0)  # error rows fit the schema


def test_faithfulness_and_gold_overlap(tiny_teachers):
    engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], k=2, template="cqa", target="gold"))
    row = {"example_id": "q", "input": "where is the cat\nAnswer Choices:\n(a) red box\n(b) tree",
           "target": "red box", "choices": ["red box", "tree"], "split": "test"}
    out = engine.attribute([row])[0]
    spans = [(s["start"], s["end"]) for s in out["spans"]]
    gold_start = out["input_text"].index("red box")
    expected = any(s < gold_start + 7 and gold_start < e for (s, e), w in zip(spans, out["tokens"]) if w in out["rationale"])
    assert out["gold_overlap"] is expected
    assert engine.attribute([dict(row, target="house")])[0]["gold_overlap"] is None  # gold text not in the input
    off = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], k=2, template="cqa", faithfulness=False))
    out = off.attribute([row])[0]
    assert out["comprehensiveness"] is None and out["sufficiency"] is None and out["gold_overlap"] is None


@pytest.mark.parametrize("field,value,needle", [
    ("method", "lime", "--method"), ("k", 0, "--k"), ("target", "both", "--target"), ("template", "nope", "template"),
    ("token_budget", 0, "--token-budget"), ("baseline", "blur", "--baseline"), ("dtype", "fp8", "--dtype"),
])
def test_config_errors_name_the_field(field, value, needle):
    with pytest.raises(ValueError, match=needle):
        AttributionConfig(teacher="t5-small", **{field: value})


def test_templates_and_formats():
    assert template_for_format("esnli") == template_for_format("anli") == "nli"
    assert template_for_format("cqa") == "cqa" and template_for_format("csv") == "generic"
    for name in TEMPLATES:
        text, start, end = resolve_template(name).render("x y")
        assert text[start:end] == "x y"
    assert resolve_template("Q: {input} A:").render("hi")[0] == "Q: hi A:"


def test_word_units_sum_subwords_and_skip_template_and_specials():
    text = "Q: (cat). sat\nA:"
    start, end = 3, 13  # "(cat). sat"
    offsets = [(0, 1), (1, 2), (3, 4), (4, 7), (7, 8), (8, 9), (10, 13), (14, 15), (15, 16), (0, 0)]
    special = [0] * 9 + [1]
    units = word_units(text, start, end, offsets, special)
    assert units.words == ["(cat).", "sat"] and units.spans == [(3, 9), (10, 13)]
    assert units.token_unit == [-1, -1, 0, 0, 0, 0, 1, -1, -1, -1]
    scores = aggregate([9, 9, 1, 2, 3, 4, 5, 9, 9, 9, 0, 0], units)  # trailing entries: padding
    assert list(scores) == [10, 5]
    assert top_k([0.1, 5, 0.3, 5, 2], 3) == [1, 3, 4]


@pytest.mark.gpu
def test_cuda_bf16_weights_agree_with_cpu_fp32(tiny_teachers, make_examples):
    import torch

    """On a GPU the default dtype is bf16 weights; its rationales should match fp32 on the CPU."""
    rows = make_examples(6)
    cpu = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], device="cpu", k=3, target="gold"))
    gpu = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], device="cuda", k=3, target="gold"))
    assert gpu.teacher.dtype == "bf16" and cpu.teacher.dtype == "fp32"
    assert next(gpu.teacher.model.parameters()).dtype == torch.bfloat16  # cast, not fp32 under autocast
    a, b = cpu.attribute(rows), gpu.attribute(rows)
    assert all(r["error"] is None for r in a + b)
    overlap = sum(len(set(x["rationale"]) & set(y["rationale"])) for x, y in zip(a, b)) / sum(len(x["rationale"]) for x in a)
    assert overlap >= 0.7, overlap
    for x, y in zip(a, b):
        assert y["teacher_logprob"] == pytest.approx(x["teacher_logprob"], rel=0.05, abs=0.05)


def test_tokens_of_is_one_pass_per_row():
    from attribution_worker.units import Units

    n = 20_000  # words x tokens would be 4e8 steps; one pass is 4e4
    units = Units(words=[f"w{i}" for i in range(n)], spans=[(i, i + 1) for i in range(n)],
                  token_unit=[-1] + [i // 2 for i in range(2 * n)] + [-1])
    assert units.tokens_of(0) == [1, 2] and units.tokens_of(n - 1) == [2 * n - 1, 2 * n]
    assert sum(len(units.tokens_of(w)) for w in range(n)) == 2 * n


@pytest.mark.gpu
def test_vllm_answers_give_the_torch_rows(tiny_teachers, make_examples):
    """--answers vllm: the same rows as the torch path on the same model (CUDA + vllm only)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pytest.importorskip("vllm")
    rows = [dict(r, choices=None) for r in make_examples(6)]  # free generation: what vLLM produces
    kw = dict(teacher=tiny_teachers["causal"], device="cuda", k=3, max_new_tokens=4, faithfulness=False)
    a = AttributionEngine(AttributionConfig(**kw)).attribute(rows)
    b = AttributionEngine(AttributionConfig(**kw, answers="vllm")).attribute(rows)
    for x, y in zip(a, b):
        assert y["error"] is None and x["teacher_output"] == y["teacher_output"] and x["rationale"] == y["rationale"]
        assert y["teacher_logprob"] == pytest.approx(x["teacher_logprob"], rel=1e-3, abs=1e-3)


def test_vllm_answers_refused_cleanly_where_they_cannot_run(tiny_teachers):
    with pytest.raises(ValueError, match="--answers: vllm generates on CUDA only"):
        AttributionConfig(teacher="t", answers="vllm", device="cpu")
    with pytest.raises(ValueError, match="decoder-only teachers"):
        AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], answers="vllm"))


def test_bf16_is_the_weights_dtype_on_cuda_only(tiny_teachers):
    import torch

    engine = AttributionEngine(AttributionConfig(teacher=tiny_teachers["seq2seq"], device="cpu"))
    assert engine.teacher.dtype == "fp32" and next(engine.teacher.model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="--dtype: bf16 weights are used on CUDA only"):
        AttributionConfig(teacher="t", dtype="bf16", device="cpu")
