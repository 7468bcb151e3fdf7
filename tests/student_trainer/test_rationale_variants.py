"""The benchmark's derived rationales (benchmarks/distill_quality.py) tag the words they name, where they name them.

The extractive student finds a rationale's tokens through `student_trainer.data.rationale_spans`; a derived
rationale that repeats a word of the input must land on the intended occurrence."""
from __future__ import annotations

import re

from attribution_worker.templates import resolve_template
from attribution_worker.units import top_k, word_units
from storage.adapters import cqa_input
from student_trainer.data import rationale_spans
from student_trainer.equation_templates import mark_quantities

from benchmarks.distill import rationales

CHOICES = ["wash dishes", "eat vegetables", "eat quickly", "have food", "eat hamburger"]


def teacher_row(question: str, weights: dict[str, float], k: int = 6) -> dict:
    """A CQA row shaped as the engine writes it: the cqa template's units (no header, no markers), a score per
    unit (`weights` by word and occurrence, "eat#2" for the second "eat"), the top-k units as the rationale."""
    text = cqa_input(question, CHOICES)
    return engine_row(text, weights, k, resolve_template("cqa").scaffolding_spans(text, 0, len(text)))


def engine_row(text: str, weights: dict[str, float], k: int = 6, scaffold=()) -> dict:
    """A row shaped as the engine writes it for `text` (word units outside `scaffold`), scored by `weights`."""
    offsets = [m.span() for m in re.finditer(r"\S+", text)]
    units = word_units(text, 0, len(text), offsets, [0] * len(offsets), scaffold)
    seen: dict[str, int] = {}
    scores = []
    for w in units.words:
        seen[w] = seen.get(w, 0) + 1
        scores.append(weights.get(f"{w}#{seen[w]}", weights.get(w, 0.01) if seen[w] == 1 else 0.01))
    picked = top_k(scores, k)
    words = [units.words[i] for i in picked]
    return {"input_text": text, "method": "saliency", "tokens": units.words,
            "spans": [{"start": s, "end": e} for s, e in units.spans], "scores": scores,
            "rationale": words, "rationale_text": " ".join(words)}


def tagged(row: dict) -> list[tuple[str, int]]:
    """(word, character start) of each tagged occurrence."""
    return [(row["input_text"][s:e], s) for s, e in rationale_spans(row)]


def test_answer_rationale_keeps_question_words_and_tags_the_answer_line():
    # "eat" occurs in the question and in three choices; the teacher's top 6 has two question words and
    # three words of wrong choices ("eat" of "eat vegetables", "hamburger", "dishes") plus "hungry".
    row = teacher_row("Why did the hungry child eat so fast?",
                      {"hungry": 0.9, "child": 0.8, "eat#2": 0.7, "hamburger": 0.6, "dishes": 0.5, "fast?": 0.4})
    assert row["rationale"] == ["hungry", "child", "fast?", "dishes", "eat", "hamburger"]
    text = row["input_text"]
    line = text.index("\n(c) eat quickly")

    out = rationales.with_answer_units(row, "eat quickly", CHOICES)
    assert out["rationale"] == ["hungry", "child", "fast?", "eat", "quickly"]
    spans = tagged(out)
    assert [w for w, _ in spans] == out["rationale"]
    # the "eat" tagged is the answer's, not the question's (text.index("eat")) or another choice's
    assert spans[-2][1] == line + len("\n(c) ") and spans[-2][1] != text.index("eat")
    assert all(start < text.index("\nAnswer Choices:") for _, start in spans[:3])
    assert out["method"] == "saliency+answer"
    assert row["rationale"] == ["hungry", "child", "fast?", "dishes", "eat", "hamburger"]  # the input row is kept

    gold = rationales.with_answer_units(row, "wash dishes", CHOICES)  # an answer the teacher already half named
    assert gold["rationale"] == ["hungry", "child", "fast?", "wash", "dishes"]
    assert [w for w, _ in tagged(gold)] == gold["rationale"]


def test_answer_rationale_leaves_rows_it_cannot_place_alone():
    row = teacher_row("Why did the hungry child eat so fast?", {"hungry": 0.9})
    assert rationales.with_answer_units(row, None, CHOICES) is row  # the teacher gave no answer (an error row)
    assert rationales.with_answer_units(row, "a sandwich", CHOICES) is row  # not one of the choices
    flat = {**row, "input_text": row["input_text"].replace("\n(c) ", " (c) ")}  # no choice line to find
    assert rationales.with_answer_units(flat, "eat quickly", CHOICES) is flat


def test_palm_projection_tags_the_words_the_chain_of_thought_uses():
    row = teacher_row("Why did the hungry child eat so fast?", {"hungry": 0.9})
    out = rationales.palm_projection(row, "A hungry child eats quickly. So the answer is eat quickly.", common={"the"})
    # every unit the text names, each occurrence (case and punctuation aside): "So" names the question's "so"
    assert out["rationale"] == ["hungry", "child", "eat", "so", "eat", "eat", "quickly", "eat"]
    assert [w for w, _ in tagged(out)] == out["rationale"]


def test_quantity_rationale_tags_the_quantities_the_template_uses():
    text = mark_quantities("Tom had 3 apples and 3 pears. He ate 2 of them.")
    assert text == "Tom had n0 3 apples and n1 3 pears. He ate n2 2 of them."
    # the teacher's top 6 has n0 and its "3", which the template "( n1 - n2 )" does not use
    row = engine_row(text, {"apples": 0.9, "n0": 0.8, "3#1": 0.7, "ate": 0.6, "them.": 0.5, "Tom": 0.4})
    assert row["rationale"] == ["Tom", "n0", "3", "apples", "ate", "them."]

    out = rationales.with_quantity_units(row, "( n1 - n2 )")
    assert out["rationale"] == ["Tom", "apples", "n1", "3", "ate", "n2", "2", "them."]
    spans = tagged(out)
    assert [w for w, _ in spans] == out["rationale"]
    assert spans[3][1] == text.index("n1 3") + 3  # the pears' 3, not the apples'
    assert out["method"] == "saliency+quantities"
    assert rationales.with_quantity_units(row, None) is row  # the teacher gave no answer
    assert rationales.with_quantity_units(row, "( n0 + n5 )") is row  # a quantity the input lacks
    dollars = engine_row(mark_quantities("It cost $3 and $4."), {"cost": 0.9}, k=1)  # "$n0": the name is still n0
    assert rationales.with_quantity_units(dollars, "( n0 + n1 )")["rationale"] == ["cost", "$n0", "3", "$n1", "4."]


def test_content_rationale_takes_the_next_content_words_and_their_own_spans():
    from student_trainer.data import common_words, repicked_rationale

    # "the" twice and "is" score highest; the second "dog" outscores the first, so the spans must find it
    text = "the dog is near the dog house ."
    row = engine_row(text, {"the": 0.9, "the#2": 0.85, "is": 0.8, "dog#2": 0.7, ".": 0.65, "house": 0.6, "near": 0.5}, k=3)
    assert row["rationale"] == ["the", "is", "the"]
    common = common_words([row["tokens"], ["the", "cat", "is", "."]], 0.5)
    assert common == {"the", "is"}  # "." normalises to "" and is left out as punctuation, not as a word
    words, spans, how = repicked_rationale(row, common)
    assert (words, how) == (["near", "dog", "house"], "repicked")
    assert [text[s:e] for s, e in spans] == words and spans[1][0] == text.rindex("dog")
    # a rationale that is not its row's top-k (e.g. a projected PaLM one) only loses its common words, and each
    # word it keeps keeps its own occurrence: the second "dog" here, not the first
    other = {**row, "rationale": ["is", "the", "dog"], "rationale_text": "is the dog"}
    words, spans, how = repicked_rationale(other, common)
    assert (words, how) == (["dog"], "filtered") and spans == ((20, 23),)
    # a unit without a finite score is never picked in a left-out word's place
    nan = {**engine_row("the cat sat", {"the": 0.9, "sat": 0.5}, k=2), "scores": [0.9, float("nan"), 0.5]}
    assert nan["rationale"] == ["the", "sat"]
    assert repicked_rationale(nan, {"the"})[:2] == (["sat"], ((8, 11),))


def test_fraction_rationale_takes_a_share_of_each_inputs_scored_words():
    from student_trainer.data import common_words, repicked_rationale

    text = "the dog is near the dog house ."  # 8 scored words
    row = engine_row(text, {"the": 0.9, "the#2": 0.85, "is": 0.8, "dog#2": 0.7, ".": 0.65, "house": 0.6, "near": 0.5}, k=3)
    words, spans, how = repicked_rationale(row, fraction=0.5)  # ceil(0.5 * 8) = 4: the top 4, in input order
    assert (words, how) == (["the", "is", "the", "dog"], "repicked")
    assert [text[s:e] for s, e in spans] == words and spans[3][0] == text.rindex("dog")
    assert repicked_rationale(row, fraction=0.3)[0] == ["the", "is", "the"]  # ceil(2.4) = 3, as stored
    assert repicked_rationale(row, fraction=0.25)[0] == ["the", "the"]  # 0.25 * 8 = 2 exactly, not 3
    assert repicked_rationale(row, fraction=0.01)[0] == ["the"]  # at least one word
    assert len(repicked_rationale(row, fraction=1.0)[0]) == 8
    # with common words out, the share still counts every scored word of the input: 4 content words here
    common = common_words([row["tokens"], ["the", "cat", "is", "."]], 0.5)
    assert repicked_rationale(row, common, fraction=0.5)[0] == ["dog", "near", "dog", "house"]  # "." is out too
    # a unit without a finite score neither counts in n nor is picked
    nan = {**engine_row("the cat sat on it", {"the": 0.9, "sat": 0.5}, k=2), "scores": [0.9, float("nan"), 0.5, 0.2, 0.1]}
    assert repicked_rationale(nan, fraction=0.5)[0] == ["the", "sat"]  # ceil(0.5 * 4) = 2
    assert repicked_rationale(nan, fraction=1.0)[0] == ["the", "sat", "on", "it"]  # all 4 scored words, not "cat"
    # a row with no finite score has nothing to pick from: it keeps its stored words
    blank = {**nan, "scores": [float("nan")] * 5, "rationale": ["the", "cat"], "rationale_text": "the cat"}
    assert repicked_rationale(blank, fraction=0.5)[::2] == (["the", "cat"], "filtered")  # not [] "repicked"
    # ceil of a share that floating point puts a hair above a whole number: 0.07 * 100 = 7.000000000000001 -> 7
    hundred = engine_row(" ".join(f"w{i}" for i in range(100)), {f"w{i}": 1 - i / 200 for i in range(100)}, k=6)
    assert 0.07 * 100 > 7 and len(repicked_rationale(hundred, fraction=0.07)[0]) == 7
    # a rationale that is not its row's top-k (a projected PaLM one) keeps its words
    other = {**row, "rationale": ["near", "house"], "rationale_text": "near house"}
    words, spans, how = repicked_rationale(other, fraction=0.5)
    assert (words, how) == (["near", "house"], "filtered") and [text[s:e] for s, e in spans] == words
