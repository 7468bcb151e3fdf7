"""`salient serve`: the REST service (api/app) under uvicorn.

    SALIENT_API_TOKENS='tokA:read,tokB:read+submit' salient --store ./salient-data serve --port 8000
    salient serve --insecure-no-auth          # 127.0.0.1 only: a local, single-user service

One flag per ServiceSettings field (api/app/core/config.py), its description as help; a flag not given
leaves the field to $SALIENT_<NAME> or its default. Tokens come from the environment only.
"""
from __future__ import annotations

_ENV_ONLY = {"api_tokens", "store"}  # store: the global --store


def register(sub) -> None:
    from api.app.core.config import ServiceSettings

    p = sub.add_parser("serve", help="run the REST service (FastAPI + dispatcher on Ray); OpenAPI at /docs")
    for name, f in ServiceSettings.model_fields.items():
        if name in _ENV_ONLY:
            continue
        flag = "--" + name.replace("_", "-")
        help_ = f"{f.description} (default {f.default}; env SALIENT_{name.upper()})"
        if f.annotation is bool:
            p.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=help_)
        else:
            p.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=help_)
    p.set_defaults(func=cmd_serve)


def settings_from_args(args):
    from pydantic import ValidationError

    from api.app.core.config import ServiceSettings

    given = {n: getattr(args, n) for n in ServiceSettings.model_fields if n not in _ENV_ONLY
             and getattr(args, n, None) is not None}
    if args.store:
        given["store"] = args.store
    try:
        return ServiceSettings(**given)
    except ValidationError as exc:
        raise ValueError("; ".join(
            (f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in exc.errors())) from None


def cmd_serve(args) -> int:
    import uvicorn

    from api.app.main import create_app

    settings = settings_from_args(args)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                timeout_graceful_shutdown=5)
    return 0
