"""Every service setting is documented in docs/service.md's table, with its default, env var and help."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.app.core.config import ServiceSettings, parse_tokens, scopes_of

DOCS = Path(__file__).resolve().parents[2] / "docs" / "service.md"


def test_settings_table_matches_service_settings():
    section = DOCS.read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `([a-z0-9_]+)` \|(.*)\|$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split(" | ")]
    fields = ServiceSettings.model_fields
    assert set(rows) == set(fields), f"docs/service.md vs ServiceSettings: {set(rows) ^ set(fields)}"
    for name, f in fields.items():
        default, env, meaning = rows[name]
        assert default == ("" if f.default == "" else str(f.default)), name
        assert env == f"`SALIENT_{name.upper()}`", name
        assert meaning == f.description, name


def test_settings_validate_and_name_the_fix(monkeypatch):
    monkeypatch.delenv("SALIENT_API_TOKENS", raising=False)
    with pytest.raises(ValueError, match="SALIENT_API_TOKENS"):
        ServiceSettings()
    with pytest.raises(ValueError, match="only with --host 127.0.0.1"):
        ServiceSettings(insecure_no_auth=True, host="0.0.0.0")
    with pytest.raises(ValueError, match="TOKEN:SCOPE"):
        ServiceSettings(api_tokens="tok:admin")
    monkeypatch.setenv("SALIENT_API_TOKENS", "a:read, b:read+submit")
    monkeypatch.setenv("SALIENT_MAX_CONCURRENT_JOBS", "3")
    s = ServiceSettings()
    assert s.max_concurrent_jobs == 3 and s.tokens() == {"a": {"read"}, "b": {"read", "submit"}}
    assert scopes_of(parse_tokens("a:read"), "a") == {"read"} and scopes_of(parse_tokens("a:read"), "ab") is None
