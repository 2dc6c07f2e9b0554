"""Running wrk against one URL and reading its report (req/s, p50, p99, errors)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROTATE_TOKENS_LUA = Path(__file__).with_name("lua") / "rotate_tokens.lua"
LATENCY_TAIL_LUA = Path(__file__).with_name("lua") / "latency_tail.lua"
_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_OVER = re.compile(r"^over ([12])s: (\d+)$", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class WrkError(Exception):
    """wrk failed or printed a report this module cannot read."""


@dataclass(frozen=True)
class Load:
    """How hard to push: wrk's ``-t``, ``-c`` and ``-d``."""

    connections: int
    threads: int
    seconds: float
    # wrk's per-request timeout: a request slower than this is a timeout error, not a latency.
    timeout: float = 5.0


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    timeouts: int = 0
    # Requests slower than 1 s and 2 s, when run with LATENCY_TAIL_LUA (None otherwise).
    over_1s: int | None = None
    over_2s: int | None = None

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse(report: str) -> WrkResult:
    """The numbers of a ``wrk --latency`` report."""
    rate = _RATE.search(report)
    total = _TOTAL.search(report)
    percentiles = {
        m.group(1): float(m.group(2)) * _TIME_UNITS_MS[m.group(3)]
        for m in _PERCENTILE.finditer(report)
    }
    if rate is None or total is None or "50" not in percentiles or "99" not in percentiles:
        raise WrkError(f"unreadable wrk report:\n{report}")
    non_2xx = _NON_2XX.search(report)
    sockets = _SOCKET.search(report)
    over = {m.group(1): int(m.group(2)) for m in _OVER.finditer(report)}
    return WrkResult(
        requests_per_s=float(rate.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _TIME_UNITS_MS[total.group(3)] / 1000.0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        timeouts=int(sockets.group(4)) if sockets else 0,
        over_1s=over.get("1"),
        over_2s=over.get("2"),
    )


def run(
    wrk: str,
    url: str,
    load: Load,
    *,
    headers: Mapping[str, str] | None = None,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    cpu: int | None = None,
) -> WrkResult:
    """Run wrk once (bounded by ``load.seconds`` plus a margin) and parse its report; ``cpu``:
    the one CPU it runs on."""
    argv = [
        wrk,
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{max(1, round(load.seconds))}s",
        "--timeout",
        f"{max(1, round(load.timeout))}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=load.seconds + 60,
            check=False,
            preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}),
        )
    except subprocess.TimeoutExpired as error:
        raise WrkError(f"wrk did not finish: {error}") from None
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()}")
    return parse(done.stdout)
