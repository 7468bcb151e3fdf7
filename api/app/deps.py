"""Request dependencies: the bearer-token check (scopes read / submit) and the service's shared objects.

    @router.get("/v1/jobs", dependencies=[Depends(require("read"))])
    def list_jobs(catalog: Catalog = Depends(get_catalog)): ...

No token: 401 with `WWW-Authenticate: Bearer`; a token without the scope: 403. Tokens are compared
in constant time (core.config.scopes_of). `--insecure-no-auth` gives every caller every scope.
These dependencies never block, so they are `async def`: FastAPI runs a plain `def` dependency in its
thread pool, a thread hop per dependency per request.
"""
from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storage import Catalog

from .core.config import SCOPES, ServiceSettings, scopes_of

_bearer = HTTPBearer(auto_error=False, description="A token from SALIENT_API_TOKENS (scopes read, submit).")


async def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


async def get_catalog(request: Request) -> Catalog:
    """The service's catalog (one per process; the dispatcher and every route share it)."""
    return request.app.state.catalog


async def get_dispatcher(request: Request):
    return request.app.state.dispatcher


def require(scope: str):
    """A dependency that lets the request through only with a token holding `scope`."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; scopes: {', '.join(SCOPES)}")

    async def check(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> frozenset[str]:
        settings: ServiceSettings = request.app.state.settings
        if settings.insecure_no_auth:
            return frozenset(SCOPES)
        if creds is None or not creds.credentials:
            raise HTTPException(401, "missing bearer token: send `Authorization: Bearer <token>` "
                                     "(tokens are set with SALIENT_API_TOKENS on the service)",
                                headers={"WWW-Authenticate": "Bearer"})
        scopes = scopes_of(request.app.state.tokens, creds.credentials)
        if scopes is None:
            raise HTTPException(401, "unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
        if scope not in scopes:
            raise HTTPException(403, f"this token lacks the {scope!r} scope (it has: {', '.join(sorted(scopes))})")
        return scopes

    check.__name__ = f"require_{scope}"
    return check
