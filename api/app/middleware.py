"""Pure ASGI middlewares: request body size limits (413) and HTTP latency by route (metrics).

BodyLimit caps what a request may send: `max_upload_bytes` for `POST /v1/datasets`, `max_request_bytes`
for every other request. A Content-Length over the limit is refused before anything is read; a body
without one (chunked) is counted as it streams, and the request is answered 413 as soon as it passes
the limit, whatever the route was doing with it (nothing is stored: the upload route ingests only a
complete body).
"""
from __future__ import annotations

import json
import time


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app, *, upload_limit: int, request_limit: int, upload_paths: tuple[str, ...] = ("/v1/datasets",)):
        self.app, self.upload_limit, self.request_limit, self.upload_paths = app, upload_limit, request_limit, upload_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") in self.upload_paths
        limit = self.upload_limit if upload else self.request_limit
        setting = "max_upload_bytes" if upload else "max_request_bytes"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await _send_413(send, limit, setting)
        seen = 0
        exceeded = False
        started = False

        async def limited_receive():
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            nonlocal started
            if exceeded:
                return  # the app's answer to a cut-off body is replaced by the 413 below
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _send_413(send, limit, setting)


async def _send_413(send, limit: int, setting: str) -> None:
    body = json.dumps({"detail": f"request body over {limit} bytes ({setting}); send less or raise "
                                 f"SALIENT_{setting.upper()} on the service"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Timing:
    """Observe each request's latency under its route template (unmatched paths as `unmatched`)."""

    def __init__(self, app, *, histogram):
        self.app, self.histogram = app, histogram

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.histogram.labels(path, scope["method"], str(status["code"])).observe(time.perf_counter() - t0)
