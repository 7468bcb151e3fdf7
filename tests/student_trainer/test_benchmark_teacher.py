"""The real-data benchmark's teacher options (which rows it trains on, starting it from an earlier teacher) and its
choice of test rows."""
import argparse
import json
import re
from pathlib import Path

import pytest

from attribution_worker.tiny import build_tiny_teacher
from student_trainer.data import id_order_slice

from benchmarks.distill import teachers

NLI = ["entailment", "neutral", "contradiction"]
TEXTS = ["a man plays a guitar", "nobody is outside"]


def tiny_classifier(path: Path, labels: list[str]) -> Path:
    return build_tiny_teacher(path, kind="classifier", texts=TEXTS, labels=labels)


def test_the_teacher_sees_the_student_pool_on_svamp_by_default_and_anywhere_when_asked():
    default, yes, no = (argparse.Namespace(teacher_sees_student=v) for v in (None, True, False))
    assert [teachers.teacher_sees_student(d, default) for d in ("svamp", "anli1", "esnli", "cqa")] == [True, False, False, False]
    assert teachers.teacher_sees_student("anli1", yes) and not teachers.teacher_sees_student("svamp", no)


def test_teacher_init_copies_a_teacher_over_the_same_labels(tmp_path):
    src = tiny_classifier(tmp_path / "esnli-teacher", NLI)
    out = teachers.init_teacher(tmp_path / "anli-teacher", src, NLI)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in src.iterdir())
    assert (out / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    mc = build_tiny_teacher(tmp_path / "cqa-mc", kind="multiple_choice", texts=TEXTS)
    assert teachers.init_teacher(tmp_path / "cqa-teacher", mc, None).is_dir()  # no labels: a multiple-choice scorer


def test_teacher_init_refuses_other_labels_or_a_directory_without_a_model(tmp_path):
    src = tiny_classifier(tmp_path / "cqa-letters", ["(a)", "(b)"])
    with pytest.raises(ValueError, match=r"over \['\(a\)', '\(b\)'\], but this dataset's teacher is over "
                                         r"\['entailment', 'neutral', 'contradiction'\]; start from a teacher"):
        teachers.init_teacher(tmp_path / "t1", src, NLI)
    with pytest.raises(ValueError, match="no model config there"):
        teachers.init_teacher(tmp_path / "t2", tmp_path / "nothing-here", NLI)
    assert not (tmp_path / "t1").exists() and not (tmp_path / "t2").exists()  # nothing half-copied


def test_teacher_init_and_teacher_dir_together_are_refused_before_any_work(dq, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dq, "SHARED", tmp_path / "no-datasets")  # past the check, the run would fail on reading
    with pytest.raises(SystemExit) as exit_:
        dq.main(["--task", "real", "--datasets", "anli1", "--teacher-dir", str(tmp_path / "a"),
                 "--teacher-init", str(tmp_path / "b"), "--store", str(tmp_path / "store")])
    assert exit_.value.code == 2
    assert "--teacher-dir reuses a teacher as it is and --teacher-init fine-tunes one further" in capsys.readouterr().err


def test_test_offset_takes_later_rows_in_example_id_order_and_refuses_an_offset_past_the_end():
    rows = [{"example_id": f"t{i:03d}"} for i in reversed(range(10))]  # the file's order is not the id order
    first, later = id_order_slice(rows, 0, 4, "anli1"), id_order_slice(rows, 4, 100, "anli1")
    assert [r["example_id"] for r in first] == ["t000", "t001", "t002", "t003"]
    assert [r["example_id"] for r in later] == [f"t{i:03d}" for i in range(4, 10)]  # the rest, none read before
    with pytest.raises(ValueError, match=r"anli1: --test-offset 10 is past the test split's 10 rows; pass an offset "
                                         r"below 10"):
        id_order_slice(rows, 10, 4, "anli1")
    with pytest.raises(ValueError, match=r"e-SNLI test: the test split has no rows; ingest the dataset with its test "
                                         r"file"):  # not "--test-offset 0 is past the test split's 0 rows"
        id_order_slice([], 0, 300, "e-SNLI test")


@pytest.mark.parametrize("task, offset, why", [("real", "-1", "got -1$"),
                                               ("planted", "5", "got 5 with --task planted, whose test rows are")])
def test_test_offset_is_refused_at_parse_time_when_negative_or_planted(dq, tmp_path, monkeypatch, capsys,
                                                                        task, offset, why):
    monkeypatch.setattr(dq, "SHARED", tmp_path / "no-datasets")  # past the check, the run would fail on reading
    monkeypatch.setattr(dq, "run_planted", lambda *a: pytest.fail("the planted task ran with a test offset"))
    with pytest.raises(SystemExit) as exit_:
        dq.main(["--task", task, "--datasets", "anli1", "--test-offset", offset, "--store", str(tmp_path / "s")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--test-offset takes a row count of the real test split (0 or more)" in err
    assert re.search(why, err)


POOLS = {"teacher_train": 3000, "n_train": 250, "n_val": 200, "teacher_sees_student": False}


def test_a_teachers_record_lists_its_training_rows_and_follows_it_through_teacher_init(tmp_path):
    first = tiny_classifier(tmp_path / "esnli-teacher", NLI)
    teachers.record_teacher(first, "esnli", [{"example_id": "e2"}, {"example_id": "e1"}], POOLS)
    teachers.record_teacher(first, "esnli", [{"example_id": "e1"}, {"example_id": "e3"}], POOLS)  # a second pass: the union
    assert teachers.read_teacher_record(first)["trained_on"] == {"esnli": ["e1", "e2", "e3"]}
    second = teachers.init_teacher(tmp_path / "anli-teacher", first, NLI)  # copied with the teacher
    teachers.record_teacher(second, "anli1", [{"example_id": "a1"}], {**POOLS, "teacher_train": 650}, started_from=first)
    record = teachers.read_teacher_record(second)
    assert record["trained_on"] == {"esnli": ["e1", "e2", "e3"], "anli1": ["a1"]}
    assert [r["dataset"] for r in record["runs"]] == ["esnli", "esnli", "anli1"] and "unrecorded_start" not in record
    assert teachers.read_teacher_record(tmp_path) is None
    (tmp_path / teachers.TEACHER_RECORD).write_text('{"trained_on": {}}')
    with pytest.raises(ValueError, match=r"salient_teacher.json is damaged \(it should hold trained_on and runs; .*"
                                         r"delete it to use the teacher unchecked, or fine-tune a new teacher"):
        teachers.read_teacher_record(tmp_path)


def test_a_teacher_started_from_an_unrecorded_one_keeps_saying_so(tmp_path):
    old = tiny_classifier(tmp_path / "old-teacher", NLI)  # saved before records existed
    new = teachers.init_teacher(tmp_path / "new-teacher", old, NLI)
    teachers.record_teacher(new, "anli1", [{"example_id": "a1"}], POOLS, started_from=old)
    logs = []
    teachers.check_teacher_rows("--teacher-dir", new, "anli1", {"student": [], "validation": [], "test": []}, False,
                          logs.append)
    assert len(logs) == 1 and f"started from {old}, which had no salient_teacher.json" in logs[0]


def test_a_reused_teacher_that_saw_this_runs_validation_or_test_rows_is_refused(tmp_path):
    path = tiny_classifier(tmp_path / "teacher", NLI)
    teachers.record_teacher(path, "esnli", [{"example_id": i} for i in ("t1", "t2", "s1", "v1")],
                      {**POOLS, "teacher_train": 9000})
    ids = lambda *xs: [{"example_id": x} for x in xs]  # noqa: E731
    logs = []
    clean = {"student": ids("s2", "s3"), "validation": ids("v2"), "test": ids("x1")}
    teachers.check_teacher_rows("--teacher-dir", path, "esnli", clean, False, logs.append)
    teachers.check_teacher_rows("--teacher-dir", path, "anli1", {**clean, "validation": ids("v1")}, False, logs.append)
    with pytest.raises(ValueError, match=r"--teacher-dir .*teacher: that teacher was fine-tuned on 1 of the 2 "
                                         r"validation rows of this esnli run: it trained on 4 esnli rows, carved by "
                                         r"--teacher-train 9000 --n-train 250 --n-val 200 --no-teacher-sees-student, "
                                         r".*Pass the same pool sizes, or drop --teacher-dir"):
        teachers.check_teacher_rows("--teacher-dir", path, "esnli", {**clean, "validation": ids("v1", "v2")}, False,
                              logs.append)
    student = {**clean, "student": ids("s1", "s2")}
    with pytest.raises(ValueError, match=r"1 of the 2 student rows .* or --teacher-sees-student where the teacher "
                                         r"may have seen the student's rows, or drop --teacher-init"):
        teachers.check_teacher_rows("--teacher-init", path, "esnli", student, False, logs.append)
    teachers.check_teacher_rows("--teacher-init", path, "esnli", student, True, logs.append)  # allowed when asked
    assert logs == []
    teachers.check_teacher_rows("--teacher-dir", tmp_path, "esnli", clean, False, logs.append)  # no record: said, not refused
    assert len(logs) == 1 and "cannot be checked" in logs[0]


def test_the_benchmark_refuses_a_reused_teacher_before_any_work(dq, tmp_path, shared_datasets, monkeypatch):
    """Through main, on the real e-SNLI file: a teacher recorded as fine-tuned on the whole validation file (as
    one from a run with --teacher-train 9000 was) is refused before attribution or any student."""
    from storage.ingest import IngestOptions, prepare

    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    valid = next(p.table for p in prepare(shared_datasets / "esnli", IngestOptions(format="esnli"))
                 if p.split == "valid")
    path = tiny_classifier(tmp_path / "teacher", NLI)
    teachers.record_teacher(path, "esnli", valid.select(["example_id"]).to_pylist(), {**POOLS, "teacher_train": 9000})
    with pytest.raises(ValueError, match=r"fine-tuned on 20 of the 20 student rows, 10 of the 10 validation rows of "
                                         r"this esnli run"):
        dq.main(["--task", "real", "--datasets", "esnli", "--teacher-dir", str(path), "--n-train", "20",
                 "--n-val", "10", "--n-test", "10", "--teacher-train", "30", "--store", str(tmp_path / "store")])
    assert not list((tmp_path / "store").glob("**/*.parquet"))  # no dataset written, no row attributed


def test_svamp_equation_refuses_a_reused_teacher(dq, tmp_path, shared_datasets, monkeypatch):
    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    with pytest.raises(ValueError, match=r"svamp: --teacher-dir takes a classifier teacher; the equation writer is "
                                         r"fine-tuned fresh in each run \(use --svamp-task template"):
        dq.main(["--task", "real", "--datasets", "svamp", "--teacher-dir", str(tmp_path / "t"), "--n-train", "20",
                 "--n-val", "10", "--n-test", "10", "--teacher-train", "30", "--arms", "plain",
                 "--store", str(tmp_path / "store")])


@pytest.mark.parametrize("args, out, why", [
    (["--task", "planted"], "new", "is for --task real"),
    (["--task", "real", "--datasets", "anli1", "--teacher-dir", "t"], "new",
     "has nothing to save: --teacher-dir reuses a teacher as it is; drop one"),
    (["--task", "real", "--datasets", "esnli,anli1"], "new", "holds one teacher, and --datasets names 2; run one per "
                                                             "command"),
    (["--task", "real", "--datasets", "esnli"], "saved", "exists; pass a new directory (a saved teacher is never "
                                                         "written over)"),
])
def test_teacher_out_is_refused_at_parse_time_where_it_cannot_hold_this_runs_teacher(dq, tmp_path, monkeypatch, capsys,
                                                                                     args, out, why):
    monkeypatch.setattr(dq, "SHARED", tmp_path / "no-datasets")  # past the check, the run would fail on reading
    monkeypatch.setattr(dq, "run_planted", lambda *a: pytest.fail("the planted task ran"))
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "config.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_:
        dq.main([*args, "--teacher-out", str(tmp_path / out), "--store", str(tmp_path / "store")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"--teacher-out {tmp_path / out} {why}")
    assert not (tmp_path / "new").exists() and not (tmp_path / "store").exists()
    assert [f.name for f in (tmp_path / "saved").iterdir()] == ["config.json"]


def test_teacher_out_saves_the_teacher_where_the_next_runs_teacher_init_takes_it(dq, tmp_path, shared_datasets,
                                                                                 monkeypatch, capsys):
    """The ANLI-R1 recipe in two commands, end to end at a tiny size: an e-SNLI teacher saved with --teacher-out,
    then fine-tuned on ANLI from there (--teacher-init) and saved again; each directory records its rows."""
    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    tiny = ["--task", "real", "--n-train", "10", "--n-val", "10", "--n-test", "10", "--teacher-train", "8",
            "--teacher-steps", "1", "--teacher-batch", "4", "--max-input-tokens", "128", "--arms", "teacher"]
    esnli, anli = tmp_path / "esnli-teacher", tmp_path / "anli-teacher"
    assert dq.main([*tiny, "--datasets", "esnli", "--teacher-out", str(esnli), "--store", str(tmp_path / "s1")]) == 0
    assert len(teachers.read_teacher_record(esnli)["trained_on"]["esnli"]) == 8
    assert dq.main([*tiny, "--datasets", "anli1", "--no-teacher-sees-student", "--teacher-init", str(esnli),
                    "--teacher-out", str(anli), "--store", str(tmp_path / "s2")]) == 0
    record = teachers.read_teacher_record(anli)
    assert {d: len(ids) for d, ids in record["trained_on"].items()} == {"esnli": 8, "anli1": 8}
    assert f"teacher fine-tuned on 8 rows in {anli}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a saved teacher is never written over
        dq.main([*tiny, "--datasets", "esnli", "--teacher-out", str(esnli), "--store", str(tmp_path / "s3")])
    assert exit_.value.code == 2 and f"--teacher-out {esnli} exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "anli-teacher", "esnli-teacher", "s1", "s2"]
    hidden = {p for p in tmp_path.iterdir() if p.name.startswith(".")}
    assert hidden == {esnli.resolve(), anli.resolve()}  # atomic_dir's versions behind the two links: no leftovers


def test_a_teacher_that_fails_to_train_leaves_nothing_at_teacher_out(dq, tmp_path, shared_datasets, monkeypatch):
    """A crash mid-training must not leave the starting teacher at --teacher-out, where a later --teacher-dir would
    take it as fine-tuned (its record, copied with it, would not even name this dataset's rows)."""
    import attribution_worker.tiny_train as tiny_train

    def crash(path, *a, **k):
        assert (path / "config.json").is_file()  # built (copied from --teacher-init), not yet trained
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    monkeypatch.setattr(tiny_train, "train_tiny_teacher", crash)
    start = tiny_classifier(tmp_path / "esnli-teacher", NLI)
    out = tmp_path / "teachers" / "anli1"
    with pytest.raises(RuntimeError, match="killed mid-training"):
        dq.main(["--task", "real", "--datasets", "anli1", "--n-train", "10", "--n-val", "10", "--n-test", "10",
                 "--teacher-train", "8", "--teacher-init", str(start), "--teacher-out", str(out), "--arms", "teacher",
                 "--store", str(tmp_path / "store")])
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # and nothing half-built beside it


def test_student_folds_cut_the_pool_in_order_and_refuse_a_count_that_cannot():
    pool = [{"example_id": f"s{i}"} for i in range(7)]
    assert teachers.student_folds(pool, 1, "anli1") == [pool]
    folds = teachers.student_folds(pool, 3, "anli1")
    assert [[r["example_id"] for r in f] for f in folds] == [["s0", "s1"], ["s2", "s3"], ["s4", "s5", "s6"]]
    for k in (0, 8):
        with pytest.raises(ValueError, match=rf"anli1: --teacher-folds {k} cannot cut 7 student rows into {k} parts; "
                                             r"pass 1 to 7"):
            teachers.student_folds(pool, k, "anli1")
    with pytest.raises(ValueError, match=r"cannot cut 0 student rows into 2 parts; ask for student rows \(--n-train\)"):
        teachers.student_folds([], 2, "anli1")


FOLD_RUN = ["--task", "real", "--datasets", "anli1", "--n-train", "10", "--n-val", "10", "--n-test", "10",
            "--teacher-train", "8", "--teacher-steps", "1", "--teacher-batch", "4", "--arms", "teacher"]


def test_fold_teachers_answer_only_student_rows_they_never_saw(dq, tmp_path, shared_datasets, monkeypatch, capsys):
    """--teacher-folds 2 end to end on ANLI-R1's file: each fold's teacher trains on the teacher pool and the other
    fold, and is the one that answers its own fold's student rows; the report carries each fold teacher's accuracy;
    the saved folds come back through --teacher-dir, and a run whose folds cut other rows is refused before work."""
    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    answered = []  # (teacher directory, example ids) per attribution call
    attribute = dq.attribute
    monkeypatch.setattr(dq, "attribute", lambda engine, exs, log: answered.append(
        (Path(engine.config.teacher), [e["example_id"] for e in exs])) or attribute(engine, exs, log))
    start, out = tiny_classifier(tmp_path / "esnli-teacher", NLI), tmp_path / "folds"
    assert dq.main([*FOLD_RUN, "--teacher-folds", "2", "--teacher-init", str(start), "--teacher-out", str(out),
                    "--store", str(tmp_path / "s1"), "--json", str(tmp_path / "r.json")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["fold-0", "fold-1"]
    trained = {k: set(teachers.read_teacher_record(out / f"fold-{k}")["trained_on"]["anli1"]) for k in (0, 1)}
    by_teacher = {}
    for path, ids in answered:
        by_teacher.setdefault(path.resolve(), []).append(ids)
    f0, f1 = (by_teacher[(out / f"fold-{k}").resolve()] for k in (0, 1))
    # per teacher, in call order: its fold's student rows, then validation and test (fold 0's stored; fold 1's
    # scored for the report)
    assert [len(ids) for ids in f0] == [5, 10, 10] and [len(ids) for ids in f1] == [5, 10, 10]
    assert f0[1:] == f1[1:]  # the same validation and test rows
    assert len(trained[0]) == len(trained[1]) == 8 + 5  # the teacher pool and the other fold
    assert not trained[0] & set(f0[0]) and not trained[1] & set(f1[0])  # neither saw the rows it answers
    assert set(f0[0]) <= trained[1] and set(f1[0]) <= trained[0]  # each saw the other's
    assert not (trained[0] | trained[1]) & set(f0[1] + f0[2])  # nor any validation or test row
    teacher = json.loads((tmp_path / "r.json").read_text())[0]
    assert teacher["student"].startswith("teacher (2 folds") and len(teacher["folds"]) == 2
    assert teacher["per_seed"] == [f["test_accuracy"] for f in teacher["folds"]]
    assert teacher["test_mean"] == pytest.approx(sum(teacher["per_seed"]) / 2)
    assert "fold teachers' test accuracy" in capsys.readouterr().err

    assert dq.main([*FOLD_RUN, "--teacher-folds", "2", "--teacher-dir", str(out), "--store", str(tmp_path / "s2")]) == 0
    assert f"teacher reused from {out}" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--teacher-dir .*fold-0: that teacher was fine-tuned on 2 of the 10 "
                                         r"validation rows of this anli1 run: it trained on 13 anli1 rows, carved by "
                                         r"--teacher-train 8 --n-train 10 --n-val 10 --teacher-folds 2, "):
        dq.main([*FOLD_RUN, "--n-train", "8", "--teacher-folds", "2", "--teacher-dir", str(out),
                 "--store", str(tmp_path / "s3")])  # 8 student rows: fold 1's last 2 are validation rows now
    swapped = tmp_path / "swapped"  # each fold directory holding the other fold's teacher
    swapped.mkdir()
    for k in (0, 1):
        (swapped / f"fold-{k}").symlink_to((out / f"fold-{1 - k}").resolve())
    with pytest.raises(ValueError, match=r"--teacher-dir .*swapped/fold-0: that teacher was fine-tuned on 5 of the 5 "
                                         r"student rows .* Pass the same pool sizes and --teacher-folds \(fold 0's "
                                         r"teacher must never have seen fold 0's rows\), or drop --teacher-dir"):
        dq.main([*FOLD_RUN, "--teacher-folds", "2", "--teacher-dir", str(swapped), "--store", str(tmp_path / "s5")])
    with pytest.raises(ValueError, match=r"--teacher-dir .*folds holds fold teachers \(fold-0 \.\.\. fold-1\), saved "
                                         r"by a run with --teacher-folds 2: pass --teacher-folds 2 with --teacher-dir"):
        dq.main([*FOLD_RUN, "--teacher-dir", str(out), "--store", str(tmp_path / "s6")])  # one teacher asked for
    with pytest.raises(ValueError, match=r"--teacher-dir .*folds: --teacher-folds 3 needs a teacher per fold in "
                                         r"fold-0 \.\.\. fold-2 there, .*fold-2 missing \(found: fold-0, fold-1\)"):
        dq.main([*FOLD_RUN, "--teacher-folds", "3", "--teacher-dir", str(out), "--store", str(tmp_path / "s4")])
    assert not [p for s in ("s3", "s4", "s5", "s6") for p in (tmp_path / s).glob("**/*.parquet")]  # refused before work


@pytest.mark.parametrize("args, why", [
    (["--task", "real", "--teacher-folds", "0"], "--teacher-folds takes the number of student-pool parts, 1 or more"),
    (["--task", "planted", "--teacher-folds", "2"], "--teacher-folds 2 is for --task real"),
    (["--task", "real", "--datasets", "anli1", "--teacher-folds", "2", "--no-teacher-sees-student"],
     "--teacher-folds 2 decides which student rows each teacher sees (all but its own fold's); drop "
     "--teacher-sees-student / --no-teacher-sees-student"),
    (["--task", "real", "--datasets", "svamp", "--teacher-folds", "2"],
     "--teacher-folds 2: SVAMP's equation-writing teacher is one model; pass --svamp-task template"),
])
def test_teacher_folds_are_refused_at_parse_time_where_they_cannot_apply(dq, tmp_path, monkeypatch, capsys, args, why):
    monkeypatch.setattr(dq, "SHARED", tmp_path / "no-datasets")  # past the check, the run would fail on reading
    monkeypatch.setattr(dq, "run_planted", lambda *a: pytest.fail("the planted task ran"))
    with pytest.raises(SystemExit) as exit_:
        dq.main([*args, "--store", str(tmp_path / "store")])
    assert exit_.value.code == 2 and why in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_a_fold_teacher_that_fails_to_train_leaves_no_fold_at_teacher_out(dq, tmp_path, shared_datasets, monkeypatch):
    """Fold 0 trained and fold 1 crashing must not leave fold 0 alone at --teacher-out, where --teacher-dir would
    find a directory of fold teachers missing one."""
    import attribution_worker.tiny_train as tiny_train

    calls, train = [], tiny_train.train_tiny_teacher

    def crash_second(path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("killed while fine-tuning fold 1")
        return train(path, *a, **k)

    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    monkeypatch.setattr(tiny_train, "train_tiny_teacher", crash_second)
    out = tmp_path / "teachers" / "anli1"
    with pytest.raises(RuntimeError, match="killed while fine-tuning fold 1"):
        dq.main([*FOLD_RUN, "--teacher-folds", "2", "--teacher-init", str(tiny_classifier(tmp_path / "start", NLI)),
                 "--teacher-out", str(out), "--store", str(tmp_path / "store")])
    assert [p.name for p in calls] == ["fold-0", "fold-1"]
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_fold_teacher_hints_name_a_fix_the_run_takes_and_a_report_without_test_rows_stays_empty(tmp_path):
    path = tiny_classifier(tmp_path / "teacher", NLI)
    teachers.record_teacher(path, "anli1", [{"example_id": "s1"}], POOLS)
    pools = {"student": [{"example_id": "s1"}], "validation": [], "test": []}
    with pytest.raises(ValueError, match=r"Pass the same pool sizes \(with --teacher-folds 2, every fold starts from "
                                         r"--teacher-init, so it must not have seen any student row\), or drop "
                                         r"--teacher-init") as refused:
        teachers.check_teacher_rows("--teacher-init", path, "anli1", pools, False, print, folds=2)
    assert "--teacher-sees-student" not in str(refused.value)  # refused beside --teacher-folds: not offered
    row = {"dataset": "anli1", "student": "teacher", "test_mean": None, "test_std": None, "per_seed": [],
           "val_mean": 0.5, "paired": None, "best_steps": []}
    folded = teachers.with_fold_teachers(row, [(0.5, None), (0.25, None)])  # --n-test 0
    assert folded["test_mean"] is None and folded["per_seed"] == [] and folded["val_mean"] == pytest.approx(0.375)
    assert teachers.with_fold_teachers(row, [(0.5, None)]) == row  # one teacher: its row as it is


def test_teacher_seed_and_schedule_reach_the_teachers_training(dq, tmp_path, shared_datasets, monkeypatch, capsys):
    """--teacher-seed seeds the new head and the batches, --teacher-schedule the rate (its trace is
    test_multiple_choice's; one step at the full rate here); the defaults (seed 0, constant) are the documented
    runs' teachers. Both are refused with --teacher-dir, which fine-tunes nothing."""
    from safetensors.torch import load_file

    import attribution_worker.tiny_train as tiny_train

    seen, real_fit, real_build = [], tiny_train.train_tiny_teacher, dq.build_classifier_teacher

    def fit(path, pairs, **kw):
        seen.append(("fit", kw["seed"], kw["schedule"]))
        return real_fit(path, pairs, **kw)

    def build(*a, seed, **kw):
        seen.append(("head", seed))
        return real_build(*a, seed=seed, **kw)

    monkeypatch.setattr(dq, "SHARED", shared_datasets)
    monkeypatch.setattr(tiny_train, "train_tiny_teacher", fit)
    monkeypatch.setattr(dq, "build_classifier_teacher", build)
    tiny = ["--task", "real", "--datasets", "esnli", "--n-train", "10", "--n-val", "10", "--n-test", "10",
            "--teacher-train", "8", "--teacher-steps", "1", "--teacher-batch", "4", "--max-input-tokens", "128",
            "--arms", "teacher"]
    drawn, default = tmp_path / "seed-1", tmp_path / "seed-0"
    assert dq.main([*tiny, "--teacher-seed", "1", "--teacher-schedule", "linear", "--teacher-out", str(drawn),
                    "--store", str(tmp_path / "s1")]) == 0
    assert dq.main([*tiny, "--teacher-out", str(default), "--store", str(tmp_path / "s2")]) == 0
    assert seen == [("head", 1), ("fit", 1, "linear"), ("head", 0), ("fit", 0, "constant")]
    assert "'final_lr'" in capsys.readouterr().err  # the log shows the rate the last update ran at
    heads = [load_file(str(d / "model.safetensors"))["classifier.weight"] for d in (drawn, default)]
    assert not heads[0].equal(heads[1])  # two draws: another head and other batches
    for bad, why in ((["--teacher-schedule", "cosine"], "invalid choice: 'cosine'"),
                     (["--teacher-seed", "2", "--teacher-dir", str(drawn)], "--teacher-dir .* reuses one as it is")):
        with pytest.raises(SystemExit) as exit_:
            dq.main([*tiny, *bad, "--store", str(tmp_path / "s3")])
        assert exit_.value.code == 2 and re.search(why, capsys.readouterr().err)
