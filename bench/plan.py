"""What one run measures and how hard: the wrk rows, the settings, and the results collected."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.auth_flow import AuthResult
from bench.cpu import CpuUse
from bench.profile import Profile
from bench.stream import StreamResult
from bench.verify_cost import CacheBound, VerifyCost
from bench.wrk import WrkResult

DIRECT = "direct"
NGINX = "nginx"
FLOOR = "python-floor"
GATEWAY_1W = "gateway-1w"
GATEWAY_2W = "gateway-2w"
CACHE_OFF = "gateway-2w-cache-off"
ASSERTION = "gateway-2w-assertion"
AUTH_REQUEST = "nginx-auth-request"
VERIFY = "gateway-verify"
HAPROXY = "haproxy-jwt"
HAPROXY_ROTATING = "haproxy-jwt-rotating"
GATEWAY_MANY_ROUTES = "gateway-2w-10k-routes"
MANY_ROUTES = 10_000
LABELS = {
    DIRECT: "direct to upstream (nginx return 200)",
    NGINX: "nginx proxy_pass, keepalive 64, no JWT",
    FLOOR: "floor: raw ASGI + aiohttp, 2 workers, no JWT",
    GATEWAY_1W: "gateway, 1 worker",
    GATEWAY_2W: "gateway, 2 workers",
    CACHE_OFF: "gateway, 2 workers, cache defeated (RS256)",
    ASSERTION: "gateway, 2 workers, identity_assertion on",
    AUTH_REQUEST: "nginx auth_request + gateway /auth/verify (2 workers)",
    VERIFY: "gateway /auth/verify alone, 2 workers",
    HAPROXY: "HAProxy 2 threads, jwt_verify RS256",
    HAPROXY_ROTATING: "HAProxy 2 threads, jwt_verify, rotating tokens",
    GATEWAY_MANY_ROUTES: f"gateway, 2 workers, {MANY_ROUTES:,} more routes",
}
# The HAProxy row each setup is compared with (the same tokens, the same concurrency).
HAPROXY_PEER = {
    GATEWAY_1W: HAPROXY,
    GATEWAY_2W: HAPROXY,
    GATEWAY_MANY_ROUTES: HAPROXY,
    CACHE_OFF: HAPROXY_ROTATING,
}
RowKey = tuple[str, int]  # (setup, connections)
PLAN: tuple[RowKey, ...] = (
    (DIRECT, 1),
    (DIRECT, 50),
    (NGINX, 1),
    (NGINX, 50),
    (NGINX, 1000),
    (HAPROXY, 1),
    (HAPROXY, 50),
    (HAPROXY_ROTATING, 50),
    (HAPROXY, 1000),
    (FLOOR, 1),
    (FLOOR, 50),
    (GATEWAY_1W, 1),
    (GATEWAY_1W, 50),
    (GATEWAY_2W, 1),
    (GATEWAY_2W, 50),
    (CACHE_OFF, 50),
    (ASSERTION, 1),
    (ASSERTION, 50),
    (AUTH_REQUEST, 1),
    (AUTH_REQUEST, 50),
    (VERIFY, 50),
    (GATEWAY_2W, 1000),
    (GATEWAY_MANY_ROUTES, 50),
)
WRK_THREADS = {1: 1, 50: 2, 1000: 2}  # connections -> wrk threads
GIB = 1024**3


@dataclass(frozen=True)
class Settings:
    """How long and how big: the full run, or ``--quick`` for a smoke test."""

    quick: bool
    seconds: float
    warmup: float
    stream_bytes: int
    verify_seconds: float
    cache_inserts: int
    rotating_tokens: int
    auth_seconds: float
    install: bool
    profile: bool
    # How many times the HAProxy and 2-worker gateway rows alternate (their median is kept).
    rounds: int
    # The interpreter that runs the gateway: the compiled wheel's virtualenv for `make bench`.
    gateway_python: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick: bool = args.quick
        return cls(
            quick=quick,
            seconds=args.seconds or (2.0 if quick else 10.0),
            warmup=1.0 if quick else 2.0,
            stream_bytes=128 * 1024**2 if quick else GIB,
            verify_seconds=0.2 if quick else 1.0,
            cache_inserts=200_000 if quick else 1_000_000,
            # More than twice the gateway's 10,000-entry cache per worker, so a worker has
            # evicted a token before it comes round again (see bench/README.md). Not fewer in
            # --quick: 8,000 fitted in the cache, and that row then measured cache hits.
            rotating_tokens=32_000,
            auth_seconds=2.0 if quick else 5.0,
            install=not args.no_install,
            profile=args.profile,
            rounds=1 if quick else 3,
            # Absolute (the gateway runs in its fixture's folder), symlinks kept (a venv's is one).
            gateway_python=os.path.abspath(getattr(args, "gateway_python", None) or sys.executable),
        )

    @property
    def command(self) -> str:
        return "python -m bench.run" + " --quick" * self.quick + " --profile" * self.profile


def median_run(runs: Sequence[tuple[WrkResult, CpuUse]]) -> tuple[WrkResult, CpuUse]:
    """The run a repeated row keeps: the median by throughput (the lower of the middle two)."""
    return sorted(runs, key=lambda run: run[0].requests_per_s)[(len(runs) - 1) // 2]


@dataclass
class Results:
    """Everything measured so far; what is missing says why in ``skipped`` or ``notes``."""

    rows: dict[RowKey, WrkResult] = field(default_factory=dict)
    # Every run of a row measured more than once; ``rows`` and ``cpu`` hold the median one.
    runs: dict[RowKey, list[tuple[WrkResult, CpuUse]]] = field(default_factory=dict)
    cpu: dict[RowKey, CpuUse] = field(default_factory=dict)
    skipped: dict[RowKey, str] = field(default_factory=dict)
    streams: list[StreamResult] = field(default_factory=list)
    costs: list[VerifyCost] = field(default_factory=list)
    bound: CacheBound | None = None
    auth: list[AuthResult] = field(default_factory=list)
    auth_unavailable: str | None = None
    profile: Profile | None = None
    features: dict[str, Any] = field(default_factory=dict)
    # ``gateway check`` on the large table: seconds, route count, and whether it passed.
    route_check: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def skip(self, setups: Sequence[str], reason: str) -> None:
        """Mark every planned row of ``setups`` not measured yet as skipped for ``reason``."""
        for key in PLAN:
            if key[0] in setups and key not in self.rows:
                self.skipped.setdefault(key, reason)
