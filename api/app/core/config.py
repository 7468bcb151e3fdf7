"""Service settings: one pydantic-settings model, read from `SALIENT_<NAME>` and `salient serve` flags.

    settings = ServiceSettings()                       # environment (SALIENT_PORT=8080 ...) + defaults
    settings = ServiceSettings(port=0, insecure_no_auth=True)   # explicit values win

Every field is a named limit or switch with its description as help (STYLE.md 4); `salient serve`
builds one flag per field from this model, and docs/service.md documents each one (a test checks
the table against `ServiceSettings.model_fields`). SQL limits (time, rows, memory, query length)
are the data layer's settings (storage/settings.py, docs/storage.md), not repeated here.
"""
from __future__ import annotations

import hmac
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SCOPES = ("read", "submit")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ServiceSettings(BaseSettings):
    """Settings of `salient serve` (env prefix SALIENT_)."""

    model_config = SettingsConfigDict(env_prefix="SALIENT_", extra="ignore", validate_default=True)

    store: str | None = Field(None, description="Store root directory (default ./salient-data).")
    host: str = Field("127.0.0.1", description="Address to bind (with --insecure-no-auth only 127.0.0.1).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to bind (0 picks a free one).")
    api_tokens: str = Field("", description="Bearer tokens and their scopes: `tokA:read,tokB:read+submit`. "
                                            "Environment only (a flag would show in `ps`).")
    insecure_no_auth: bool = Field(False, description="Serve without tokens (every caller has every scope); "
                                                      "refused unless host is 127.0.0.1.")
    max_upload_bytes: int = Field(256 * 1024 * 1024, gt=0,
                                  description="Largest dataset upload (the whole multipart body); more gets 413.")
    max_request_bytes: int = Field(1024 * 1024, gt=0,
                                   description="Largest body of every other request (job specs, SQL); more gets 413.")
    max_concurrent_jobs: int = Field(1, ge=1, description="Jobs the dispatcher drives at once; others wait queued.")
    dispatcher_poll_s: float = Field(1.0, gt=0, description="Seconds between the dispatcher's looks for queued jobs.")
    events_poll_s: float = Field(0.5, gt=0, description="Seconds between job-status checks of an events stream.")
    events_heartbeat_s: float = Field(15.0, gt=0, description="Seconds between keep-alive comments on an idle events stream.")
    page_limit_max: int = Field(500, ge=1, description="Most items one list page (`GET /v1/jobs?limit=`) returns.")
    ray_address: str | None = Field(None, description="Ray cluster to run jobs on; default $RAY_ADDRESS, "
                                                      "else a local cluster started by the service.")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray cluster (default: all).")
    view_sample_rows: int = Field(12, ge=1, le=200, description="Sample heatmaps on a job's HTML view.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="uvicorn log level.")

    @field_validator("api_tokens")
    @classmethod
    def _tokens_parse(cls, v: str) -> str:
        parse_tokens(v)
        return v

    @model_validator(mode="after")
    def _auth_or_loopback(self) -> "ServiceSettings":
        if self.insecure_no_auth and self.host not in LOOPBACK:
            raise ValueError(f"--insecure-no-auth is allowed only with --host 127.0.0.1 (got {self.host!r}): "
                             "set SALIENT_API_TOKENS instead")
        if not self.insecure_no_auth and not self.api_tokens.strip():
            raise ValueError("no API tokens: set SALIENT_API_TOKENS='token:read+submit' "
                             "(or pass --insecure-no-auth with --host 127.0.0.1 for a local, single-user service)")
        return self

    def tokens(self) -> dict[str, frozenset[str]]:
        return parse_tokens(self.api_tokens)


def parse_tokens(text: str) -> dict[str, frozenset[str]]:
    """`tokA:read,tokB:read+submit` -> {token: scopes}; ValueError naming the bad entry."""
    out: dict[str, frozenset[str]] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        token, sep, scopes = entry.rpartition(":")
        names = frozenset(s.strip() for s in scopes.split("+") if s.strip())
        if not sep or not token or not names or not names <= set(SCOPES):
            shown = (token[:3] + "…") if token else entry[:3] + "…"
            raise ValueError(f"SALIENT_API_TOKENS entry {shown!r}: write TOKEN:SCOPE[+SCOPE] with scopes from "
                             f"{', '.join(SCOPES)}, entries separated by commas")
        out[token] = names
    return out


def scopes_of(tokens: dict[str, frozenset[str]], presented: str) -> frozenset[str] | None:
    """The scopes of `presented`, compared in constant time against every configured token; None if unknown."""
    found = None
    given = presented.encode()
    for token, scopes in tokens.items():
        if hmac.compare_digest(token.encode(), given):
            found = scopes
    return found
