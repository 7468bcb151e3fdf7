"""CQA scaffolding inside the input ("Answer Choices:", "(a)".."(e)") is never a unit, never scored,
never in the rationale; the question and choice texts stay attributable, spans stay exact."""
from __future__ import annotations

import random

import numpy as np
import pytest

from attribution_worker.engine import AttributionConfig, AttributionEngine
from attribution_worker.methods import METHODS
from attribution_worker.templates import resolve_template
from attribution_worker.units import word_units
from storage.adapters import cqa_input

KINDS = ("seq2seq", "causal", "classifier")
SCAFFOLD_WORDS = {"Answer", "Choices", "Choices:", "(a)", "(b)", "(c)", "(d)", "(e)", "(", ")", "a)", "(b"}
QWORDS = "where would you find a cat that sat on the red mat near big house tree".split()
CHOICES = ["red box", "blue tree", "small house", "dog", "the far mat"]


def cqa_rows(n: int = 6, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        question = " ".join(rng.choice(QWORDS) for _ in range(2 + (i * 5) % 9)) + "?"
        choices = rng.sample(CHOICES, 5)
        rows.append({"example_id": f"q{i}", "input": cqa_input(question, choices), "target": choices[i % 5],
                     "choices": choices, "split": "test"})
    return rows


@pytest.fixture(scope="module")
def cqa_teachers(tmp_path_factory) -> dict:
    from attribution_worker.tiny import build_tiny_teacher

    root = tmp_path_factory.mktemp("cqa_teachers")
    texts = [r["input"] for r in cqa_rows(20)] + ["entailment neutral contradiction"]
    labels = {"classifier": ["entailment", "neutral", "contradiction"]}
    return {kind: str(build_tiny_teacher(root / kind, kind=kind, texts=texts, labels=labels.get(kind), seed=3))
            for kind in KINDS}


def _scaffold(text: str) -> list[tuple[int, int]]:
    """Where the header and the markers are in a rendered cqa input_text (found independently of the engine)."""
    head = text.index("\nAnswer Choices:\n") + 1
    spans = [(head, head + len("Answer Choices:"))]
    for letter in "abcde":
        at = text.index(f"\n({letter}) ", head) + 1
        spans.append((at, at + 3))
    return spans


def test_cqa_template_finds_the_header_and_markers_only():
    tpl = resolve_template("cqa")
    question = "Which (a) is it? Answer Choices: maybe\n(a) not a marker: the choice block is not at the end"
    text, start, end = tpl.render(cqa_input(question, CHOICES))
    found = [text[s:e] for s, e in tpl.scaffolding_spans(text, start, end)]
    assert found == ["Answer Choices:", "(a)", "(b)", "(c)", "(d)", "(e)"]
    assert tpl.scaffolding_spans(text, start, end) == _scaffold(text)
    for name in ("generic", "nli", "svamp"):  # other templates have no scaffolding
        t = resolve_template(name)
        assert t.scaffolding_spans(*t.render(cqa_input("q?", CHOICES))) == []
    assert resolve_template("Q: {input} A:").scaffolding == ()


def test_word_units_drop_scaffolding_tokens_and_keep_exact_spans():
    text = "Q: cat?\nAnswer Choices:\n(a) red box\n(b)dog\nA:"
    start, end = 3, len(text) - 3
    tpl = resolve_template("cqa")
    scaffold = [(text.index("Answer"), text.index("Answer") + 15), (24, 27), (36, 39)]
    assert text[24:27] == "(a)" and text[36:39] == "(b)"
    # tokens: Q : cat ? Answer Choices : ( a ) red box ( b)dog  A :   (one token straddles a marker and a word)
    offsets = [(0, 1), (1, 2), (3, 6), (6, 7), (8, 14), (15, 22), (22, 23), (24, 25), (25, 26), (26, 27),
               (28, 31), (32, 35), (36, 37), (37, 42), (43, 44), (44, 45)]
    units = word_units(text, start, end, offsets, [0] * len(offsets), scaffold)
    assert units.words == ["cat?", "red", "box", "dog"]
    assert [text[s:e] for s, e in units.spans] == units.words
    assert units.token_unit == [-1, -1, 0, 0, -1, -1, -1, -1, -1, -1, 1, 2, -1, 3, -1, -1]
    plain = word_units(text, start, end, offsets, [0] * len(offsets))  # without: the scaffolding is words
    assert {"Answer", "Choices:", "(a)"} <= set(plain.words)
    assert tpl.scaffolding_spans(text, start, end) == []  # "(b)dog" is not a choice line: no well-formed block


def _check_rows(out, rows):
    for row, ex in zip(out, rows):
        assert row["error"] is None, row["error"]
        text = row["input_text"]
        scaffold = _scaffold(text)
        spans = [(s["start"], s["end"]) for s in row["spans"]]
        assert len(spans) == len(row["tokens"]) == len(row["scores"])
        assert [text[s:e] for s, e in spans] == row["tokens"], "every span's text is its token"
        assert not SCAFFOLD_WORDS & set(row["tokens"])
        assert not SCAFFOLD_WORDS & set(row["rationale"])
        assert not any(s < he and hs < e for s, e in spans for hs, he in scaffold), "no unit covers scaffolding"
        # the question and every choice text stay attributable
        block = text.index("\nAnswer Choices:\n")
        question_words = ex["input"][: ex["input"].index("\nAnswer Choices:\n")].split()
        assert row["tokens"][: len(question_words)] == question_words
        assert row["tokens"][len(question_words):] == " ".join(ex["choices"]).split()
        assert all(s > block for s, _ in spans[len(question_words):])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_cqa_rows_have_no_scaffolding_units_and_batched_equals_one_by_one(cqa_teachers, kind, method):
    rows = cqa_rows(6)
    engine = AttributionEngine(AttributionConfig(
        teacher=cqa_teachers[kind], method=method, k=4, template="cqa", n_steps=4, max_new_tokens=3))
    batched = engine.attribute(rows)
    _check_rows(batched, rows)
    for row, one in zip(batched, (engine.attribute([r])[0] for r in rows)):
        assert one["error"] is None and row["tokens"] == one["tokens"] and row["spans"] == one["spans"]
        assert row["teacher_output"] == one["teacher_output"]
        a, b = np.asarray(row["scores"], dtype=np.float64), np.asarray(one["scores"], dtype=np.float64)
        scale = max(np.abs(a).max(), np.abs(b).max(), abs(row["teacher_logprob"]) if method == "occlusion" else 0, 1e-12)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale)


def test_rationale_of_every_word_has_no_scaffolding_and_gold_overlap_is_measured(cqa_teachers):
    rows = cqa_rows(4, seed=1)
    engine = AttributionEngine(AttributionConfig(teacher=cqa_teachers["seq2seq"], k=100, template="cqa", target="gold"))
    out = engine.attribute(rows)
    _check_rows(out, rows)
    for row in out:
        assert row["rationale"] == row["tokens"]  # k > #units: the whole rationale, still no scaffolding
        assert row["gold_overlap"] is True  # the gold choice text is attributable and in the rationale
    generic = AttributionEngine(AttributionConfig(teacher=cqa_teachers["seq2seq"], k=100, template="generic", target="gold"))
    assert {"Answer", "Choices:", "(a)"} <= set(generic.attribute(rows[:1])[0]["tokens"])  # no scaffolding list there


def test_nli_labels_are_scaffolding_but_words_inside_stay():
    from attribution_worker.templates import resolve_template
    from storage.adapters import nli_input

    tpl = resolve_template("nli")
    text = nli_input("A man says hypothesis: maybe.", "The premise: is wrong.")
    input_text, start, end = tpl.render(text)
    spans = tpl.scaffolding_spans(input_text, start, end)
    found = sorted(input_text[a:b] for a, b in spans)
    assert found == ["hypothesis:", "premise:"]
    # the occurrences inside the sentences are not the labels: each label is found once, at its line start
    assert all(input_text[a - 1] == "\n" or a == start for a, b in spans)


def test_scaffolding_follows_the_data_not_the_template(cqa_teachers, tmp_path):
    """A classifier teacher reads the bare input (template generic); the labels ingest put inside it are still
    scaffolding when `scaffolding` names the format, and a job sets it from the dataset's ingest format."""
    from attribution_worker.jobs import engine_config
    from attribution_worker.spec import JobSpec
    import json

    from storage import Catalog, Store
    from storage.adapters import nli_input
    from storage.ingest import IngestOptions, ingest

    rows = cqa_rows(4, seed=2)
    conf = dict(teacher=cqa_teachers["classifier"], k=100, template="generic", faithfulness=False)
    _check_rows(AttributionEngine(AttributionConfig(scaffolding="cqa", **conf)).attribute(rows), rows)
    bare = AttributionEngine(AttributionConfig(scaffolding="none", **conf)).attribute(rows[:1])[0]
    assert {"Answer", "Choices:", "(a)"} <= set(bare["tokens"])  # `none` switches it off
    nli = [{"example_id": "n0", "input": nli_input("a cat sat on the mat", "the red tree"), "target": "neutral",
            "choices": None}]
    row = AttributionEngine(AttributionConfig(scaffolding="nli", **conf)).attribute(nli)[0]
    assert row["tokens"] == "a cat sat on the mat the red tree".split() and "premise:" not in row["rationale"]
    with pytest.raises(ValueError, match=r"--scaffolding: 'esnli' is not one of cqa, nli, none"):
        AttributionConfig(scaffolding="esnli", **conf)

    with Catalog.open(Store.open(tmp_path / "store")) as cat:
        (tmp_path / "esnli_test.json").write_text(json.dumps({"premise": "a cat sat", "hypothesis": "a tree",
                                                               "label": 1}) + "\n")
        ingest(cat, "pairs", tmp_path / "esnli_test.json", IngestOptions(format="esnli"))
        spec = JobSpec(dataset="pairs", **conf)
        assert engine_config(cat, spec)["scaffolding"] == "nli"  # from the format, whatever the template
        assert engine_config(cat, JobSpec(dataset="pairs", **{**conf, "scaffolding": "none"}))["scaffolding"] == "none"
        # a spec that leaves scaffolding unset keeps the id it had before the field (computed at c5474f0)
        assert JobSpec(dataset="d", teacher="t", k=3, template="generic").default_job_id() == "job-d-a291e140f11d"
        assert JobSpec(dataset="pairs", scaffolding="nli", **conf).default_job_id() != spec.default_job_id()
