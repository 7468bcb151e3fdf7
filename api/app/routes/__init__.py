"""One router per resource (the full-stack template's layout).

Routes that return a plain dict or list say `response_model=None`: with the return annotation alone,
FastAPI validates the value against `dict` in its thread pool, a second thread hop per request for a
check that cannot fail. At 32 concurrent clients that hop cost more CPU than the submit handler
itself (docs/service.md, "Under load").
"""
