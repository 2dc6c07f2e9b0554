"""Access log and Prometheus metrics (SPEC §5.5).

One JSON line per request goes to stdout; everything else is logged to stderr. The access log
never carries a token, cookie or query string: the path logged is the normalised path only,
because query strings are where careless clients put secrets.

Metrics use prometheus-client; when ``PROMETHEUS_MULTIPROC_DIR`` is set (``gateway serve`` sets
it) every worker writes its own files and any worker's ``/metrics`` adds them all up. Label sets
are bounded: route names from the configuration, status codes, and enumerated reasons, never
raw paths or subjects.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

log = logging.getLogger("gateway")

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter("gateway_requests_total", "Requests answered", ["route", "status"])
DURATION = Histogram(
    "gateway_request_duration_seconds", "Time to answer a request", ["route"], buckets=_BUCKETS
)
UPSTREAM_DURATION = Histogram(
    "gateway_upstream_duration_seconds",
    "Time spent waiting for and streaming the upstream's answer",
    ["route"],
    buckets=_BUCKETS,
)
AUTH_FAILURES = Counter(
    "gateway_auth_failures_total", "Requests refused by authentication", ["reason"]
)
REFRESHES = Counter("gateway_refreshes_total", "Refresh-token exchanges", ["outcome"])
REUSE_DETECTIONS = Counter(
    "gateway_refresh_reuse_detections_total", "Rotated refresh tokens presented again"
)
STORE_ERRORS = Counter("gateway_store_errors_total", "Failed store operations", ["operation"])
RELOADS = Counter("gateway_config_reloads_total", "Configuration reloads", ["result"])
UPSTREAM_FAILURES = Counter(
    "gateway_upstream_failures_total", "Upstream connection failures", ["route", "kind"]
)


def render_metrics() -> bytes:
    """The Prometheus exposition of every worker's metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


@dataclass(slots=True)
class AccessRecord:
    """What one request did, filled in along the way and written once at the end."""

    method: str
    path: str
    client: str
    request_id: str = ""
    route: str = ""
    status: int = 0
    upstream_status: int | None = None
    upstream_ms: float | None = None
    sub: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    auth_failure: str | None = None


class AccessLog:
    """Writes one line per request to stdout, as JSON or as text for a terminal."""

    def __init__(self, fmt: str = "json", stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.stream = stream or sys.stdout
        self._children: dict[tuple[str, int], Counter] = {}
        self._durations: dict[str, Histogram] = {}
        self._upstream_durations: dict[str, Histogram] = {}

    def finish(self, record: AccessRecord, started: float) -> None:
        """Count the request in the metrics and write its log line."""
        elapsed = time.perf_counter() - started
        route = record.route or "-"
        key = (route, record.status)
        counter = self._children.get(key)
        if counter is None:
            counter = self._children[key] = REQUESTS.labels(route, str(record.status))
        counter.inc()
        duration = self._durations.get(route)
        if duration is None:
            duration = self._durations[route] = DURATION.labels(route)
        duration.observe(elapsed)
        if record.upstream_ms is not None:
            upstream = self._upstream_durations.get(route)
            if upstream is None:
                upstream = self._upstream_durations[route] = UPSTREAM_DURATION.labels(route)
            upstream.observe(record.upstream_ms / 1000)
        if record.auth_failure is not None:
            AUTH_FAILURES.labels(record.auth_failure).inc()
        self.stream.write(self.format(record, elapsed))

    def format(self, record: AccessRecord, elapsed: float) -> str:
        if self.fmt == "text":
            upstream = f" upstream={record.upstream_status}" if record.upstream_status else ""
            return (
                f"{time.strftime('%H:%M:%S')} {record.status} {record.method} {record.path} "
                f"route={record.route or '-'}{upstream} {elapsed * 1000:.1f}ms "
                f"sub={record.sub or '-'} client={record.client} id={record.request_id}\n"
            )
        return (
            json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                    + f".{int(time.time() * 1000) % 1000:03d}Z",
                    "request_id": record.request_id,
                    "method": record.method,
                    "path": record.path,
                    "route": record.route or None,
                    "status": record.status,
                    "upstream_status": record.upstream_status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "upstream_ms": None
                    if record.upstream_ms is None
                    else round(record.upstream_ms, 3),
                    "sub": record.sub,
                    "client": record.client,
                    "bytes_in": record.bytes_in,
                    "bytes_out": record.bytes_out,
                },
                separators=(",", ":"),
            )
            + "\n"
        )


def configure_logging(level: int = logging.INFO) -> None:
    """Operational logs to stderr, one line each; the access log owns stdout."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Line-buffered stdout: each access line reaches the collector as it is written.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)
