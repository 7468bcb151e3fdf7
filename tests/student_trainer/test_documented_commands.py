"""Every `benchmarks/distill_quality.py` command in docs/trainer.md and docs/quality-runs.md (where the benchmark's
recipes and measured runs are; the README names them inline) still gets through the benchmark's argument parsing
and checks, so a renamed or removed flag cannot leave a documented recipe that no longer runs.

Each command runs `main` up to the point where the store would open (patched to stop there): argparse and the
cross-flag checks made before any work (`--teacher-out`, `--teacher-dir` with `--teacher-init`, arm names, sizes)
run for real. Checks that need the dataset's rows (a reused teacher's record, arms a dataset cannot train) come
after the store opens and are not exercised here.
Placeholders such as `<the e-SNLI teacher>` become a path; the working directory is an empty temp dir, so the
documented `--teacher-out salient-data/teachers/...` paths do not exist yet, as on a fresh clone.
"""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "trainer.md"  # the target table and the commands behind it
DOCS = (DOC, ROOT / "docs" / "quality-runs.md")  # and every measured run's command
TARGET_BLOCK = "**The commands behind each dataset's target row, from nothing.**"


class Stopped(Exception):
    """Raised where the benchmark would open its store: everything before it has run."""


def commands(text: str) -> list[list[str]]:
    """argv (after distill_quality.py) of each command in the fenced code blocks of `text`."""
    found = []
    for block in text.split("```")[1::2]:
        for line in re.sub(r"\\\n", " ", block).splitlines():
            if "distill_quality.py" not in line or line.strip().startswith("#"):
                continue
            argv = shlex.split(re.sub(r"<[^>]*>", "some/teacher", line))
            found.append(argv[[a.endswith("distill_quality.py") for a in argv].index(True) + 1:])
    return found


def test_every_documented_distill_quality_command_parses(dq, monkeypatch, tmp_path):
    def stop(*_a, **_k):
        raise Stopped

    monkeypatch.setattr(dq.Store, "open", stop)
    monkeypatch.setattr(dq.torch, "set_num_threads", lambda n: None)  # --threads: not this process's business
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dq.tempfile, "tempdir", str(tmp_path))  # the default store (mkdtemp) made here, not in /tmp
    found = {doc.name: commands(doc.read_text()) for doc in DOCS}
    for name, least in ((DOC.name, 6), ("quality-runs.md", 45)):  # 7 and 49 when written
        assert len(found[name]) >= least, f"{name}: {len(found[name])} distill_quality.py commands; the parser lost them"
    refused = []
    for name, argvs in found.items():
        for argv in argvs:
            try:
                dq.main(argv)
            except Stopped:
                continue
            except SystemExit as exc:  # argparse's p.error: exit code 2
                refused.append(f"{name}: exit {exc.code}: {' '.join(argv)}")
            else:
                refused.append(f"{name}: returned without opening a store: {' '.join(argv)}")
    assert not refused, "documented commands the benchmark refuses:\n" + "\n".join(refused)


def test_the_target_block_has_a_recipe_for_each_of_the_four_datasets():
    text = DOC.read_text()
    assert TARGET_BLOCK in text
    block = text[text.index(TARGET_BLOCK):].split("```")[1]
    datasets = [argv[argv.index("--datasets") + 1] for argv in commands(f"```{block}```")]
    assert sorted(set(datasets)) == ["anli1", "cqa", "esnli", "svamp"], datasets



def test_help_gives_the_defaults_each_task_takes(dq, capsys):
    """--help's "(planted X, real Y)" and the values a run takes without the flag come from one table."""
    with pytest.raises(SystemExit):
        dq.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    for key, (planted, real) in dq.TASK_DEFAULTS.items():
        assert dq.by_task(key) in shown, f"--help does not give {key}'s defaults {dq.by_task(key)}"
        for task, value in (("planted", planted), ("real", real)):
            args = dq.with_task_defaults(argparse.Namespace(task=task, **dict.fromkeys(dq.TASK_DEFAULTS)))
            assert getattr(args, key) == value, (task, key)
    given = dq.with_task_defaults(argparse.Namespace(task="real", **{**dict.fromkeys(dq.TASK_DEFAULTS), "k": 3}))
    assert given.k == 3  # a flag that was given stays
