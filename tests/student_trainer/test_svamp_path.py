"""The SVAMP path of the real-data benchmark on tiny config-built models: a warm-started encoder-decoder
(BERT2BERT) teacher fine-tuned to write the equation -> saliency rationales over the question from the
engine -> shards -> the generative `encdec` student, whose loss falls; and the equation scorer reads the
split decimals a WordPiece tokenizer decodes ("84. 0")."""
from __future__ import annotations

import json
import random
import statistics

from st_helpers import add_job, tiny_bert, tiny_cfg
from student_trainer.evaluate import equation_match, eval_equation

NAMES = ["tom", "ann", "sam", "liz"]
THINGS = ["apples", "pens", "cards", "books"]


def problems(n: int, split: str) -> list[dict]:
    """SVAMP-shaped rows: body + question, the equation as the target ("( 3.0 + 4.0 )")."""
    rng = random.Random(split)
    out = []
    for i in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        who, what = rng.choice(NAMES), rng.choice(THINGS)
        more = rng.random() < 0.5
        verb, op = ("gets", "+") if more else ("loses", "-")
        text = f"{who} has {a} {what} . {who} {verb} {b} {what} . how many {what} does {who} have ?"
        out.append({"example_id": f"{split}-{i}", "input": text, "target": f"( {a}.0 {op} {b}.0 )", "choices": None,
                    "split": split})
    return out


def vocab_words() -> list[str]:
    return NAMES + THINGS + [str(d) for d in range(10)] + "has gets loses how many does have ? . ( ) + - 0".split()


def test_equation_scorer_reads_wordpiece_decimals():
    assert eval_equation("( 84. 0 / 2. 0 ) - 3. 5") == 38.5
    assert equation_match("( 84. 0 / 2. 0 )", "( 84.0 / 2.0 )")
    assert not equation_match("( 84. 0 * 2. 0 )", "( 84.0 / 2.0 )")


def test_svamp_path_encdec_teacher_saliency_rows_encdec_student(catalog, tmp_path):
    from transformers import AutoTokenizer

    from attribution_worker.engine import AttributionConfig, AttributionEngine
    from attribution_worker.teachers import load_teacher
    from attribution_worker.tiny_train import train_tiny_teacher
    from student_trainer.run import run_training
    from student_trainer.students import warm_start_encdec

    bert = tiny_bert(tmp_path / "bert", words=vocab_words(), layers=2)
    tok = AutoTokenizer.from_pretrained(str(bert))
    teacher_dir = tmp_path / "teacher"
    warm_start_encdec(str(bert), str(bert), tok, seed=0).save_pretrained(teacher_dir)
    tok.save_pretrained(teacher_dir)

    teacher = load_teacher(str(teacher_dir), device="cpu")
    assert teacher.kind == "seq2seq" and teacher.eos_id == tok.sep_token_id  # BERT2BERT: [SEP] ends the answer
    assert teacher.answer_ids("( 3.0 + 4.0 )")[0] != tok.cls_token_id  # decoding starts from [CLS] already

    pairs = [(r["input"], r["target"]) for r in problems(64, "teacher")]
    before = train_tiny_teacher(teacher_dir, pairs, steps=1, batch_size=16, lr=0.0, seed=0)["final_loss"]  # lr 0: untrained
    stats = train_tiny_teacher(teacher_dir, pairs, steps=40, batch_size=16, lr=3e-3, seed=0)
    assert stats["final_loss"] < 0.5 * before, (before, stats)  # -log p(equation | question) falls

    engine = AttributionEngine(AttributionConfig(teacher=str(teacher_dir), method="saliency", k=3, faithfulness=False,
                                                 device="cpu", max_new_tokens=16))
    splits = {"train": problems(48, "train"), "valid": problems(12, "valid"), "test": problems(12, "test")}
    rows = {s: engine.attribute(ex) for s, ex in splits.items()}
    for s, out in rows.items():
        assert all(r["error"] is None for r in out), [r["error"] for r in out if r["error"]][:3]
        for r, ex in zip(out, splits[s]):
            assert len(r["rationale"]) == 3 and all(w in ex["input"].split() for w in r["rationale"])
            assert r["teacher_output"] and "[SEP]" not in r["teacher_output"] and "[PAD]" not in r["teacher_output"]
            r["teacher_correct"] = equation_match(r["teacher_output"], ex["target"])
    add_job(catalog, "svamp-toy", "job1", rows)

    cfg = tiny_cfg(dataset="svamp-toy", student="encdec", checkpoint=str(bert), student_layers=1, steps=40, lr=3e-3,
                   eval_every=20, checkpoint_every=100, label_weight=0.5, val_split="valid", max_target_tokens=16,
                   compare_baseline=True)
    assert cfg.resolved_scorer == "equation"  # datasets named svamp* are scored by evaluating equations
    res = run_training(catalog, cfg, promote=False)
    work = res["run_dir"] + "/work"
    for variant in ("student", "baseline"):
        hist = json.loads(open(f"{work}/{variant}-seed0/result.json").read())["history"]
        losses = [h["label_loss"] for h in hist]
        assert statistics.fmean(losses[-4:]) < 0.7 * statistics.fmean(losses[:4]), (variant, losses)
    student = json.loads(open(f"{work}/student-seed0/result.json").read())["history"]
    assert any("rationale_loss" in h for h in student)  # the teacher's saliency rationales were trained on
    assert 0.0 <= res["metrics"]["variants"]["student"]["test_accuracy"]["mean"] <= 1.0
