"""Idempotency-Key bindings written behind the answer, many to a catalog write (routes/jobs.py).

A key whose spec names an existing job (created under another key, or none) names that job for
good. The route answers from its in-memory table at once and hands the binding to this writer, which
stores every binding handed over since its last write in one catalog transaction
(storage.Catalog.bind_idempotency_keys). One write costs about 10 ms on a quiet machine and writes
are one at a time, so a burst of new keys (every client starting at once) written one by one on the
request path queued behind each other: p99 of POST /v1/jobs went from 91-100 ms to 108-147 ms at 32
clients (benchmarks/api_load.py).

What a crash can lose: the bindings of the last moments before it (the batch not yet written). A
key so lost is unknown after the restart: sent again with the same body it finds the same job, as
before; only a different body under it would get its own job instead of 409. A job's own key (the
one that created it) is stored with the job and never lost.

    binder = KeyBinder(catalog).start()
    binder.bind(key, job_id, body)       # returns at once
    binder.stop()                        # writes what is left
"""
from __future__ import annotations

import logging
import threading

from storage import Catalog

log = logging.getLogger(__name__)


class KeyBinder:
    """Writes Idempotency-Key bindings in the background, everything pending in one catalog write."""

    def __init__(self, catalog: Catalog, *, retry_s: float = 1.0):
        self._catalog = catalog
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[str, dict]] = {}  # key -> (job id, spec), not yet written
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> "KeyBinder":
        self._thread = threading.Thread(target=self._run, name="salient-idempotency-keys", daemon=True)
        self._thread.start()
        return self

    def bind(self, key: str, job_id: str, spec: dict) -> None:
        """Store that `key` names `job_id` for the request `spec` (the first binding of a key wins)."""
        with self._lock:
            self._pending.setdefault(key, (job_id, spec))
        self._wake.set()

    def flush(self) -> None:
        """Write every pending binding now (one transaction); on failure they stay pending."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            stored = self._catalog.bind_idempotency_keys(batch)
        except Exception:
            with self._lock:
                self._pending = batch | self._pending
            raise
        for key, binding in stored.items():
            if binding[0] != batch[key][0]:
                log.warning("Idempotency-Key %r was bound to job %s before this service bound it to %s; "
                            "the earlier binding stands", key, binding[0], batch[key][0])

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        self.flush()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the catalog busy or unreadable: keep them and try again
                log.exception("Idempotency-Key bindings not written yet; retrying in %.1f s", self._retry_s)
                self._wake.wait(self._retry_s)
                self._wake.set()
