"""Prometheus metrics of the service (`GET /metrics`), one registry per app.

salient_jobs{status}                       gauge, jobs in the catalog by status (read at scrape time)
salient_rows_attributed                    gauge, rows in committed shards of every job (catalog, at scrape)
salient_rows_committed_total               counter, rows this process committed
salient_shard_commit_seconds               histogram, catalog commit of one shard (dispatcher)
salient_sql_seconds                        histogram, one POST /v1/sql query in the sandbox
salient_http_request_seconds{route,method,status}   histogram, by route template (e.g. /v1/jobs/{job_id})
"""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from storage import Catalog
from storage.catalog import JOB_STATES


class _CatalogCollector:
    def __init__(self, catalog: Callable[[], Catalog | None]):
        self.catalog = catalog

    def collect(self):
        catalog = self.catalog()
        if catalog is None:  # the app has not started yet
            return
        counts = {s: 0 for s in JOB_STATES}
        rows = 0
        for job in catalog.jobs():
            counts[job["status"]] = counts.get(job["status"], 0) + 1
            rows += job["done_rows"] or 0
        jobs = GaugeMetricFamily("salient_jobs", "Jobs in the catalog by status.", labels=["status"])
        for status, n in counts.items():
            jobs.add_metric([status], n)
        yield jobs
        yield GaugeMetricFamily("salient_rows_attributed", "Rows in committed shards of every job.", value=rows)


class Metrics:
    """catalog: returns the service's catalog (None before the app started)."""

    def __init__(self, catalog: Callable[[], Catalog | None]):
        self.registry = CollectorRegistry()
        self.registry.register(_CatalogCollector(catalog))
        self.rows_committed = Counter("salient_rows_committed", "Rows this service process committed in shards.",
                                      registry=self.registry)
        self.shard_commit_seconds = Histogram("salient_shard_commit_seconds", "Catalog commit of one shard.",
                                              registry=self.registry)
        self.sql_seconds = Histogram("salient_sql_seconds", "One SQL query in the sandbox (POST /v1/sql).",
                                     registry=self.registry)
        self.http_seconds = Histogram("salient_http_request_seconds", "HTTP request latency by route template.",
                                      ["route", "method", "status"], registry=self.registry)
