"""Issue 5's targets, checked against one run's measurements. A miss is reported, never raised."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.plan import ASSERTION, CACHE_OFF, DIRECT, GATEWAY_1W, GATEWAY_2W, NGINX, RowKey
from bench.stream import StreamResult
from bench.verify_cost import CacheBound, VerifyCost
from bench.wrk import WrkResult

MIN_SHARE_OF_NGINX = 0.25
MAX_P99_MS = 20.0
MIN_SHARE_CACHE_OFF = 0.11
MAX_ADDED_MEDIAN_MS = 0.35
MAX_STREAM_RSS_GROWTH_MIB = 30.0
MAX_CACHE_HIT_US = 2.0
MAX_ASSERTION_COST = 0.05

Rows = Mapping[RowKey, WrkResult]


@dataclass(frozen=True)
class Verdict:
    """One target: ``passed`` is None when the run could not measure it."""

    target: str
    passed: bool | None
    detail: str

    @property
    def word(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]

    def line(self) -> str:
        return f"{self.word}  {self.target}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _throughput(rows: Rows, setup: str, share: float, max_p99: float | None) -> Verdict:
    label = {GATEWAY_2W: "gateway 2 workers", CACHE_OFF: "gateway 2 workers, cache off"}[setup]
    target = f"{label} c=50 >= {share:.0%} of nginx"
    if max_p99 is not None:
        target += f", p99 <= {max_p99:g} ms"
    gateway, nginx = rows.get((setup, 50)), rows.get((NGINX, 50))
    if gateway is None or nginx is None or nginx.requests_per_s == 0:
        return Verdict(target, None, "not measured")
    ratio = gateway.requests_per_s / nginx.requests_per_s
    passed = ratio >= share and (max_p99 is None or gateway.p99_ms <= max_p99)
    detail = f"{ratio:.1%} of nginx ({gateway.requests_per_s:,.0f} / {nginx.requests_per_s:,.0f})"
    detail += f", p99 {gateway.p99_ms:.2f} ms"
    if gateway.errors:
        passed = False
        detail += f", {gateway.errors} errors"
    return Verdict(target, passed, detail)


def _assertion(rows: Rows) -> Verdict:
    """req/s moves by more than 5% between runs on a shared machine: the instruction count
    (python -m bench.instructions [--assertion]) is the figure to trust for this one."""
    target = f"identity_assertion on, 2 workers c=50 within {MAX_ASSERTION_COST:.0%} of off"
    on, off = rows.get((ASSERTION, 50)), rows.get((GATEWAY_2W, 50))
    if on is None or off is None or off.requests_per_s == 0:
        return Verdict(target, None, "not measured")
    ratio = on.requests_per_s / off.requests_per_s
    detail = f"{ratio:.1%} ({on.requests_per_s:,.0f} / {off.requests_per_s:,.0f} req/s)"
    return Verdict(target, ratio >= 1 - MAX_ASSERTION_COST and not on.errors, detail)


def _added_median(rows: Rows) -> Verdict:
    target = f"c=1 median added over direct <= {MAX_ADDED_MEDIAN_MS} ms"
    direct = rows.get((DIRECT, 1))
    added = {
        label: rows[(setup, 1)].p50_ms - direct.p50_ms
        for setup, label in ((GATEWAY_1W, "1 worker"), (GATEWAY_2W, "2 workers"))
        if direct is not None and (setup, 1) in rows
    }
    if not added:
        return Verdict(target, None, "not measured")
    detail = ", ".join(f"{label} +{ms:.3f} ms" for label, ms in added.items())
    return Verdict(target, all(ms <= MAX_ADDED_MEDIAN_MS for ms in added.values()), detail)


def _streams(streams: Sequence[StreamResult]) -> Verdict:
    target = f"1 GiB each way, gateway peak RSS growth < {MAX_STREAM_RSS_GROWTH_MIB:g} MiB"
    through = [s for s in streams if s.through == "gateway"]
    if not through:
        return Verdict(target, None, "not measured")
    if any(s.size < 2**30 for s in through):
        return Verdict(target, None, f"not measured at 1 GiB ({through[0].size / 2**20:.0f} MiB)")
    parts = []
    passed = True
    for stream in through:
        growth = stream.rss_growth_mib
        parts.append(
            f"{stream.direction} {stream.bytes / 2**30:.2f} GiB "
            f"+{growth if growth is not None else float('nan'):.1f} MiB"
            + ("" if stream.ok else f" ({stream.detail})")
        )
        passed = passed and stream.ok and growth is not None
        passed = passed and growth is not None and growth < MAX_STREAM_RSS_GROWTH_MIB
    return Verdict(target, passed, ", ".join(parts))


def _cache_hit(costs: Sequence[VerifyCost]) -> Verdict:
    target = f"verified-token cache hit < {MAX_CACHE_HIT_US:g} us"
    if not costs:
        return Verdict(target, None, "not measured")
    detail = ", ".join(f"{c.algorithm} {c.cache_hit_us:.2f} us" for c in costs)
    return Verdict(
        target,
        all(c.cache_hit_us < MAX_CACHE_HIT_US for c in costs),
        detail + " (Verifier.verify, hit)",
    )


def _bounded(bound: CacheBound | None) -> Verdict:
    target = "verified-token cache bounded under 1 million distinct tokens"
    if bound is None:
        return Verdict(target, None, "not measured")
    detail = (
        f"{bound.inserted:,} inserted, at most {bound.largest_len:,} entries "
        f"(max {bound.maxsize:,}), RSS +{bound.growth_mib:.1f} MiB after the first checkpoint"
    )
    if bound.inserted < 1_000_000:
        return Verdict(target, None, detail + " (not a million)")
    return Verdict(target, bound.bounded, detail)


def check(
    rows: Rows,
    streams: Sequence[StreamResult],
    costs: Sequence[VerifyCost],
    bound: CacheBound | None,
) -> list[Verdict]:
    """Every target of issue 5 that the benchmark can measure."""
    return [
        _throughput(rows, GATEWAY_2W, MIN_SHARE_OF_NGINX, MAX_P99_MS),
        _throughput(rows, CACHE_OFF, MIN_SHARE_CACHE_OFF, None),
        _assertion(rows),
        _added_median(rows),
        _streams(streams),
        _cache_hit(costs),
        _bounded(bound),
    ]
