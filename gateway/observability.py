"""Access log and metrics, cheap enough to run on every request.

What they hold, for users: docs/behaviour.md#logs-and-metrics.

Access log: one JSON line per request on stdout (``--log-format text`` for a terminal);
everything else goes to stderr. It never carries a token, cookie or query string: the path
logged is the normalised path only, because query strings are where careless clients put
secrets. Lines are buffered and written together at least every 0.2 s (one ``write`` instead
of one per request), and at shutdown.

Metrics: the per-request series (requests by route and status, latency histograms, refusals by
reason) are counted in plain dicts in each worker; a worker publishes a snapshot file every
second into ``PROMETHEUS_MULTIPROC_DIR`` (``gateway serve`` sets it), and any worker's
``/metrics`` adds every snapshot up through a prometheus-client collector. prometheus-client's
own multiprocess mode costs several system calls per increment; it is kept for the rare events
(refreshes, reloads, store errors). Other workers' counts are at most a second behind. Label
sets are bounded: route names from the configuration, status codes and enumerated reasons,
never raw paths or subjects.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("gateway")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SNAPSHOT_PREFIX = "gateway-requests-"

REFRESHES = Counter("gateway_refreshes_total", "Refresh-token exchanges", ["outcome"])
REUSE_DETECTIONS = Counter(
    "gateway_refresh_reuse_detections_total", "Rotated refresh tokens presented again"
)
STORE_ERRORS = Counter("gateway_store_errors_total", "Failed store operations", ["operation"])
RELOADS = Counter("gateway_config_reloads_total", "Configuration reloads", ["result"])
INPUT_FAILURES = Counter(
    "gateway_input_load_failures_total",
    "Reloadable inputs that failed to load (the last good state kept serving)",
    ["input"],
)
# 1 while a reloadable input is broken and its last good state serves, in any live worker.
INPUT_DEGRADED = Gauge(
    "gateway_input_degraded",
    "Reloadable inputs that are broken now (the last good state serves)",
    ["input"],
    multiprocess_mode="livemax",
)
INPUTS = ("config", "users_file", "keys", "jwks_file", "jwks_uri")
ACCESS_LOG_DROPPED = Counter(
    "gateway_access_log_dropped_lines_total",
    "Access-log lines dropped because stdout stopped taking them",
)
WEBSOCKETS_OPEN = Gauge(
    "gateway_websockets_open",
    "WebSockets relayed right now",
    ["route"],
    multiprocess_mode="livesum",
)
WEBSOCKET_CLOSES = Counter(
    "gateway_websocket_closes", "WebSockets ended, by why", ["route", "reason"]
)
UPSTREAM_FAILURES = Counter(
    "gateway_upstream_failures_total", "Upstream connection failures", ["route", "kind"]
)


class Buckets:
    """Bucket counts and a sum, in the shape Prometheus wants them."""

    __slots__ = ("counts", "total")

    def __init__(self, counts: list[int] | None = None, total: float = 0.0) -> None:
        self.counts = counts or [0] * (len(BUCKETS) + 1)
        self.total = total

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


class RequestStats:
    """The per-request series of one worker, counted in memory."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.durations: dict[str, Buckets] = {}
        self.upstream: dict[str, Buckets] = {}
        self.auth_failures: dict[str, int] = {}
        self.changed = False

    def record(self, route: str, status: int, seconds: float, upstream: float | None) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.durations.get(route)
        if histogram is None:
            histogram = self.durations[route] = Buckets()
        histogram.observe(seconds)
        if upstream is not None:
            histogram = self.upstream.get(route)
            if histogram is None:
                histogram = self.upstream[route] = Buckets()
            histogram.observe(upstream)
        self.changed = True

    def refused(self, reason: str) -> None:
        self.auth_failures[reason] = self.auth_failures.get(reason, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": [[r, s, n] for (r, s), n in self.requests.items()],
            "durations": {r: [h.counts, h.total] for r, h in self.durations.items()},
            "upstream": {r: [h.counts, h.total] for r, h in self.upstream.items()},
            "auth_failures": self.auth_failures,
        }

    def merge_json(self, data: dict[str, Any]) -> None:
        for route, status, count in data.get("requests", ()):
            key = (route, int(status))
            self.requests[key] = self.requests.get(key, 0) + int(count)
        for field in ("durations", "upstream"):
            mine: dict[str, Buckets] = getattr(self, field)
            for route, (counts, total) in data.get(field, {}).items():
                histogram = mine.setdefault(route, Buckets())
                histogram.counts = [a + b for a, b in zip(histogram.counts, counts, strict=True)]
                histogram.total += total
        for reason, count in data.get("auth_failures", {}).items():
            self.auth_failures[reason] = self.auth_failures.get(reason, 0) + int(count)


STATS = RequestStats()


def publish_snapshot() -> None:
    """Write this worker's counts where every worker's ``/metrics`` can read them."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory or not STATS.changed:
        return
    STATS.changed = False
    path = os.path.join(directory, f"{_SNAPSHOT_PREFIX}{os.getpid()}.json")
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(STATS.to_json(), handle)
    os.replace(temporary, path)


def _all_workers() -> RequestStats:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    total = RequestStats()
    total.merge_json(STATS.to_json())
    if not directory:
        return total
    own = f"{_SNAPSHOT_PREFIX}{os.getpid()}.json"
    for name in os.listdir(directory):
        if name.startswith(_SNAPSHOT_PREFIX) and name.endswith(".json") and name != own:
            with (
                contextlib.suppress(OSError, ValueError),
                open(os.path.join(directory, name), encoding="utf-8") as handle,
            ):
                total.merge_json(json.load(handle))
    return total


class _RequestCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        stats = _all_workers()
        requests = CounterMetricFamily(
            "gateway_requests", "Requests answered", labels=["route", "status"]
        )
        for (route, status), count in sorted(stats.requests.items()):
            requests.add_metric([route, str(status)], count)
        yield requests
        for name, doc, series in (
            ("gateway_request_duration_seconds", "Time to answer a request", stats.durations),
            (
                "gateway_upstream_duration_seconds",
                "Time spent waiting for and streaming the upstream's answer",
                stats.upstream,
            ),
        ):
            family = HistogramMetricFamily(name, doc, labels=["route"])
            for route, histogram in sorted(series.items()):
                cumulative, buckets = 0, []
                for bound, count in zip((*BUCKETS, float("inf")), histogram.counts, strict=True):
                    cumulative += count
                    buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
                family.add_metric([route], buckets, histogram.total)
            yield family
        failures = CounterMetricFamily(
            "gateway_auth_failures", "Requests refused by authentication", labels=["reason"]
        )
        for reason, count in sorted(stats.auth_failures.items()):
            failures.add_metric([reason], count)
        yield failures


def render_metrics() -> bytes:
    """The Prometheus exposition of every worker's metrics."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(_RequestCollector())
        return generate_latest(registry)
    registry.register(_RequestCollector())
    from prometheus_client import REGISTRY

    return generate_latest(registry) + generate_latest(REGISTRY)


class AccessRecord:
    """What one request did, filled in along the way and written once at the end.

    A plain class: compiled (mypyc), a dataclass keeps its generated ``__init__`` in Python."""

    __slots__ = (
        "auth_failure",
        "bytes_in",
        "bytes_out",
        "client",
        "close_code",
        "method",
        "path",
        "request_id",
        "route",
        "status",
        "sub",
        "upstream_ms",
        "upstream_status",
    )

    def __init__(self, method: str, path: str, client: str, request_id: str = "") -> None:
        self.method = method
        self.path = path
        self.client = client
        self.request_id = request_id
        self.route = ""
        self.status = 0
        self.upstream_status: int | None = None
        self.upstream_ms: float | None = None
        self.sub: str | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.auth_failure: str | None = None
        self.close_code: int | None = None  # a WebSocket's, logged when it ends


def _nullable(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


_JSON_LINE = (
    '{"time":"%s","request_id":%s,"method":%s,"path":%s,"route":%s,"status":%d,'
    '"upstream_status":%s,"duration_ms":%.3f,"upstream_ms":%s,"sub":%s,"client":%s,'
    '"bytes_in":%d,"bytes_out":%d%s}\n'
)

# Chunks (one per flush, every 0.2 s) held for a stalled stdout: ~3 s of lines, a few MiB.
_BACKLOG_CHUNKS = 16


class AccessLog:
    """Counts every request in the metrics and buffers its log line for stdout.

    Lines are written by a thread of their own once ``start`` is called: stdout may be a pipe
    to a log shipper that stalls, and a blocking write on the event loop would stop the
    worker's requests with it. When the backlog is full, lines are dropped and counted
    (``gateway_access_log_dropped_lines_total``) rather than holding up a single request."""

    def __init__(self, fmt: str = "json", stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.stream = stream or sys.stdout
        self._buffer: list[str] = []
        self._second = -1
        self._stamp = ""
        self._chunks: queue.Queue[str | None] = queue.Queue(maxsize=_BACKLOG_CHUNKS)
        self._writer: threading.Thread | None = None
        self._warned_at = 0.0

    def start(self) -> None:
        """Write from a thread from now on."""
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="access-log", daemon=True)
            self._writer.start()

    def close(self, timeout: float = 2.0) -> None:
        """Hand over what is buffered and wait (a bounded time) for it to be written."""
        self.flush()
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(queue.Full):
                self._chunks.put(None, timeout=timeout)
            writer.join(timeout)

    def finish(self, record: AccessRecord, started: float) -> None:
        """Count the request in the metrics and queue its log line."""
        elapsed = time.perf_counter() - started
        upstream = None if record.upstream_ms is None else record.upstream_ms / 1000
        STATS.record(record.route or "-", record.status, elapsed, upstream)
        if record.auth_failure is not None:
            STATS.refused(record.auth_failure)
        self._buffer.append(
            self._text(record, elapsed) if self.fmt == "text" else self._json(record, elapsed)
        )
        if self._writer is None and len(self._buffer) >= 256:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered lines to the writer (or write them, before ``start``)."""
        if not self._buffer:
            return
        lines, self._buffer = self._buffer, []
        chunk = "".join(lines)
        if self._writer is None:
            self._write(chunk)
            return
        try:
            self._chunks.put_nowait(chunk)
        except queue.Full:
            ACCESS_LOG_DROPPED.inc(len(lines))
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                logging.getLogger("gateway").warning(
                    "stdout is not taking access-log lines: dropping them (counted in "
                    "gateway_access_log_dropped_lines_total)"
                )

    def _write_loop(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._write(chunk)

    def _write(self, chunk: str) -> None:
        try:
            self.stream.write(chunk)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # stdout closed: nothing to log to, and no reason to fail a request

    # One %-format per line: compiled, an f-string's format specs are a str.format call each.
    def _now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return "%s.%03dZ" % (self._stamp, int((now - second) * 1000))  # noqa: UP031

    def _json(self, record: AccessRecord, elapsed: float) -> str:
        return _JSON_LINE % (
            self._now(),
            encode_basestring_ascii(record.request_id),
            encode_basestring_ascii(record.method),
            encode_basestring_ascii(record.path),
            encode_basestring_ascii(record.route) if record.route else "null",
            record.status,
            "null" if record.upstream_status is None else str(record.upstream_status),
            elapsed * 1000,
            "null" if record.upstream_ms is None else "%.3f" % record.upstream_ms,  # noqa: UP031
            _nullable(record.sub),
            encode_basestring_ascii(record.client),
            record.bytes_in,
            record.bytes_out,
            "" if record.close_code is None else ',"close_code":%d' % record.close_code,  # noqa: UP031
        )

    def _text(self, record: AccessRecord, elapsed: float) -> str:
        upstream = f" upstream={record.upstream_status}" if record.upstream_status else ""
        if record.close_code is not None:
            upstream += f" close={record.close_code}"
        return (
            f"{self._now()} {record.status} {record.method} {record.path} "
            f"route={record.route or '-'}{upstream} {elapsed * 1000:.1f}ms "
            f"sub={record.sub or '-'} client={record.client} id={record.request_id}\n"
        )


def configure_logging(level: int = logging.INFO) -> None:
    """Operational logs to stderr, one line each; the access log owns stdout."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # python-multipart warns once per malformed login body (the client already gets 400): any
    # client could flood the operational log with them.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
