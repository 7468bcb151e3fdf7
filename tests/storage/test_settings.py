"""Every limit is a named setting (storage.settings), documented in docs/storage.md, overridable from the env."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from storage.settings import SETTINGS, all_settings, get_setting

DOCS = Path(__file__).resolve().parents[2] / "docs" / "storage.md"


def _doc_rows() -> dict[str, list[str]]:
    rows = {}
    settings_section = DOCS.read_text().split("\n## Settings\n", 1)[1]
    for line in settings_section.splitlines():
        m = re.match(r"^\| `([a-z0-9_]+)` \|(.*)\|$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def test_every_setting_is_documented_with_its_default_env_and_help():
    rows = _doc_rows()
    for s in SETTINGS:
        assert s.name in rows, f"{s.name} is missing from the settings table of {DOCS}"
        default, env, help_text = rows[s.name]
        assert default == str(s.default), f"{s.name}: docs say default {default}, code says {s.default}"
        assert env == f"`{s.env_var}`"
        assert help_text == s.help
    assert set(rows) == {s.name for s in SETTINGS}, "docs/storage.md documents a setting that does not exist"


def test_every_setting_has_a_default_and_help():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    for s in SETTINGS:
        assert s.default is not None and len(s.help) > 20 and s.help.endswith(".")


def test_env_overrides_and_errors_name_the_variable(monkeypatch):
    monkeypatch.setenv("SALIENT_SQL_MAX_ROWS", "25")
    monkeypatch.setenv("SALIENT_SQL_TIME_LIMIT_S", "2.5")
    assert get_setting("sql_max_rows") == 25 and get_setting("sql_time_limit_s") == 2.5
    assert get_setting("sql_max_rows", {"sql_max_rows": 3}) == 3  # an explicit override wins
    assert all_settings()["sql_max_rows"] == 25
    monkeypatch.setenv("SALIENT_SQL_THREADS", "two")
    with pytest.raises(ValueError, match="SALIENT_SQL_THREADS='two' is not a valid int"):
        get_setting("sql_threads")
    monkeypatch.setenv("SALIENT_SQL_THREADS", "0")
    with pytest.raises(ValueError, match="must be positive"):
        get_setting("sql_threads")
    with pytest.raises(ValueError, match="unknown setting 'sql_nope'; known settings: sql_time_limit_s"):
        get_setting("sql_nope")
