"""One run as text (the table and the lines under it) and as JSON in bench/results/."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.auth_flow import AuthResult
from bench.cpu import CpuUse
from bench.plan import (
    CACHE_OFF,
    DIRECT,
    FLOOR,
    GATEWAY_1W,
    GATEWAY_2W,
    HAPROXY,
    HAPROXY_PEER,
    LABELS,
    NGINX,
    PLAN,
    Results,
    RowKey,
    Settings,
)
from bench.profile import Profile
from bench.stream import StreamResult
from bench.targets import Rows, Verdict
from bench.verify_cost import CacheBound, VerifyCost
from bench.wrk import WrkResult


def _ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.3f}" if reference else "-"


def table(rows: Rows, cpu: Mapping[RowKey, CpuUse], skipped: Mapping[RowKey, str]) -> str:
    """The wrk rows: throughput, latency, ratios, CPU per request, and the machine's other load."""
    header = (
        "setup",
        "conc",
        "req/s",
        "p50 ms",
        "p99 ms",
        "vs nginx",
        "vs HAProxy",
        "vs direct",
        "CPU us/req",
        "others' load",
        "errors",
    )
    lines: list[tuple[str, ...]] = [header]
    for setup, connections in PLAN:
        result = rows.get((setup, connections))
        label = LABELS.get(setup, setup)
        if result is None:
            reason = skipped.get((setup, connections), "not run")
            lines.append((label, str(connections), *["-"] * 8, f"skipped: {reason}"))
            continue
        nginx = rows.get((NGINX, connections))
        direct = rows.get((DIRECT, connections))
        peer = rows.get((HAPROXY_PEER[setup], connections)) if setup in HAPROXY_PEER else None
        use = cpu.get((setup, connections))
        lines.append(
            (
                label,
                str(connections),
                f"{result.requests_per_s:,.0f}",
                f"{result.p50_ms:.3f}",
                f"{result.p99_ms:.3f}",
                _ratio(result.requests_per_s, nginx.requests_per_s if nginx else None),
                _ratio(result.requests_per_s, peer.requests_per_s if peer else None),
                _ratio(result.requests_per_s, direct.requests_per_s if direct else None),
                f"{use.server / result.requests * 1e6:.0f}" if use and result.requests else "-",
                f"{use.others_cores:.2f} cores" if use else "-",
                str(result.errors),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:-1], widths[1:-1], strict=True)]
        cells.append(line[-1].ljust(widths[-1]))
        out.append("| " + " | ".join(cells) + " |")
        if index == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def added_latency_line(rows: Rows) -> str:
    """The c=1 median latency each gateway adds over going direct."""
    direct = rows.get((DIRECT, 1))
    if direct is None:
        return "c=1 median added over direct: not measured"
    parts = [
        f"{LABELS[setup]} +{rows[(setup, 1)].p50_ms - direct.p50_ms:.3f} ms"
        for setup in (NGINX, HAPROXY, FLOOR, GATEWAY_1W, GATEWAY_2W)
        if (setup, 1) in rows
    ]
    return f"c=1 median added over direct ({direct.p50_ms:.3f} ms): " + "; ".join(parts)


def tail_line(rows: Rows, connections: int = 1000) -> str:
    """At c=1000: the slowest requests, which a starved connection shows."""
    parts = []
    for (setup, count), result in rows.items():
        if count != connections:
            continue
        parts.append(
            f"{LABELS[setup]} p99 {result.p99_ms:.0f} ms, over 1 s {result.over_1s}, "
            f"over 2 s {result.over_2s}, timeouts (10 s) {result.timeouts}"
        )
    return f"c={connections}: " + ("; ".join(parts) or "not measured")


def route_check_line(check: Mapping[str, Any] | None) -> str:
    """How long ``gateway check`` took on the large route table."""
    if check is None:
        return "gateway check on the large route table: not measured"
    verdict = "OK" if check["ok"] else f"FAILED: {' '.join(check['output'])}"
    return f"gateway check on {check['routes']:,} routes: {check['seconds']:.2f} s, {verdict}"


NOISY_CORES = 0.25


def noise_line(cpu: Mapping[RowKey, CpuUse]) -> str | None:
    """A warning naming the rows measured while other processes kept the machine busy."""
    noisy = [
        f"{LABELS[setup]} c={connections} ({use.others_cores:.2f})"
        for (setup, connections), use in cpu.items()
        if use.others_cores >= NOISY_CORES
    ]
    if not noisy:
        return None
    return (
        f"warning: {len(noisy)} of {len(cpu)} rows ran while processes outside the benchmark kept "
        f">= {NOISY_CORES} of the 2 cores busy; their req/s and CPU/req are pessimistic: "
        + "; ".join(noisy)
    )


def runs_line(runs: Mapping[RowKey, Sequence[tuple[WrkResult, CpuUse]]]) -> str | None:
    """The rows measured in alternating runs: the req/s of each, the median kept."""
    repeated = [
        f"{LABELS[setup]} c={count}: "
        + " / ".join(f"{result.requests_per_s:,.0f}" for result, _ in found)
        for (setup, count), found in runs.items()
        if len(found) > 1
    ]
    if not repeated:
        return None
    return "alternating runs, req/s (the table keeps each row's median): " + "; ".join(repeated)


def cpu_line(rows: Rows, cpu: Mapping[RowKey, CpuUse], connections: int = 50) -> str:
    """CPU per request of each proxy at c=50, relative to nginx's: the figure noise moves least."""

    def per_request(setup: str) -> float | None:
        key = (setup, connections)
        use, result = cpu.get(key), rows.get(key)
        if use is None or result is None or not result.requests:
            return None
        return use.server / result.requests * 1e6

    nginx = per_request(NGINX)
    parts = []
    for setup in (NGINX, HAPROXY, FLOOR, GATEWAY_1W, GATEWAY_2W, CACHE_OFF):
        value = per_request(setup)
        if value is not None:
            ratio = f" ({value / nginx:.1f}x nginx)" if nginx and setup != NGINX else ""
            parts.append(f"{LABELS[setup]} {value:.0f} us{ratio}")
    return f"CPU per request at c={connections}: " + ("; ".join(parts) or "not measured")


def stream_lines(streams: Sequence[StreamResult]) -> list[str]:
    lines = []
    for s in streams:
        line = (
            f"stream {s.direction:8} via {s.through:7} {s.bytes / 2**20:7.0f} MiB "
            f"in {s.seconds:5.2f} s = {s.mib_per_s:6.0f} MiB/s"
        )
        if s.rss_growth_mib is not None and s.rss_peak_mib is not None:
            line += f", gateway RSS peak {s.rss_peak_mib:.1f} MiB (+{s.rss_growth_mib:.1f} MiB)"
        if not s.ok:
            line += f"  FAILED: {s.detail}"
        lines.append(line)
    return lines


def verify_lines(costs: Sequence[VerifyCost], bound: CacheBound | None) -> list[str]:
    lines = [
        f"verify {c.algorithm:5}: uncached {c.uncached_us:7.1f} us, cache hit "
        f"{c.cache_hit_us:5.2f} us (TokenCache.get {c.cache_get_us:.2f} us), "
        f"PyJWT sign {c.sign_us:7.1f} us"
        for c in costs
    ]
    if bound is not None:
        first = bound.checkpoints[0]["rss_mib"] if bound.checkpoints else 0.0
        lines.append(
            f"token cache: {bound.inserted:,} distinct tokens, {bound.put_us:.2f} us per put, "
            f"at most {bound.largest_len:,} entries, RSS {first:.1f} MiB -> "
            f"+{bound.growth_mib:.2f} MiB, bounded: {'yes' if bound.bounded else 'NO'}"
        )
    return lines


def auth_lines(auth: Sequence[AuthResult], unavailable: str | None) -> list[str]:
    if unavailable is not None:
        return [f"login / refresh on SQLite: {unavailable}"]
    return [
        f"{a.endpoint:7} on SQLite: {a.per_s:8.1f} /s, p50 {a.p50_ms:.1f} ms, "
        f"p99 {a.p99_ms:.1f} ms, {a.errors} errors {a.detail}".rstrip()
        for a in auth
    ]


def profile_lines(profile: Profile | None, count: int = 15) -> list[str]:
    if profile is None or profile.samples == 0:
        return []
    lines = [f"py-spy, gateway 2 workers at c=50 ({profile.samples} samples), own time by package:"]
    lines += [f"  {share:6.1%}  {name}" for name, share in profile.top_packages(8)]
    lines.append("  own time by function:")
    lines += [f"  {share:6.1%}  {name}" for name, share in profile.top_own(count)]
    lines.append("  inclusive, gateway functions:")
    lines += [f"  {share:6.1%}  {name}" for name, share in profile.top_inclusive(10)]
    return lines


def target_lines(verdicts: Sequence[Verdict]) -> list[str]:
    return [v.line() for v in verdicts]


def features_line(features: Mapping[str, Any]) -> str:
    """What the measured gateway had on: the access log and /metrics."""
    if not features:
        return "gateway features: not measured"
    log = "on" if features["access_log"] else "absent"
    metrics = "on" if features["metrics"] else "absent"
    return (
        f"gateway measured with: access log {log} ({features['access_log_lines']:,} JSON lines "
        f"after timed rows of {features['requests_sent']:,} requests plus warm-up), "
        f"metrics {metrics} "
        f"(admin /metrics answered {features['metrics_status']})"
    )


def machine_line(machine: Mapping[str, Any]) -> str:
    """Where the run happened: the ratios to nginx move with the CPU (bench/README.md)."""
    memory = machine.get("memory_bytes") or 0
    return (
        f"machine: {machine.get('cpu_model') or 'unknown CPU'}, {machine.get('cores')} cores, "
        f"{memory / 1024**3:.0f} GiB, Python {machine.get('python')}, "
        f"{(machine.get('nginx') or 'no nginx').removeprefix('nginx version: ')}, "
        f"{machine.get('haproxy') or 'no HAProxy'}; gateway {machine.get('gateway_build')}"
    )


def print_run(
    results: Results, verdicts: Sequence[Verdict], fixture: str, machine: Mapping[str, Any]
) -> None:
    """The whole run on stdout: machine, table, the lines under it, targets, notes."""
    print()
    print(machine_line(machine))
    print(table(results.rows, results.cpu, results.skipped))
    print()
    print(added_latency_line(results.rows))
    print(cpu_line(results.rows, results.cpu))
    print(tail_line(results.rows))
    print(route_check_line(results.route_check))
    repeated = runs_line(results.runs)
    if repeated is not None:
        print(repeated)
    warning = noise_line(results.cpu)
    if warning is not None:
        print(warning)
    print(features_line(results.features) + f"; {fixture}")
    for line in (
        stream_lines(results.streams)
        + verify_lines(results.costs, results.bound)
        + auth_lines(results.auth, results.auth_unavailable)
        + profile_lines(results.profile)
    ):
        print(line)
    print()
    for line in target_lines(verdicts):
        print(line)
    for note in results.notes:
        print(f"note: {note.splitlines()[0]}")


def document(
    results: Results,
    verdicts: Sequence[Verdict],
    *,
    settings: Settings,
    machine: Mapping[str, Any],
    fixture: Mapping[str, Any],
    started: float,
    finished: float,
    interrupted: bool,
) -> dict[str, Any]:
    """The run as one JSON-ready dictionary."""
    rows = []
    for key in PLAN:
        setup, connections = key
        row: dict[str, Any] = {"setup": setup, "label": LABELS[setup], "connections": connections}
        if key in results.rows:
            row.update(results.rows[key].as_dict())
            use = results.cpu.get(key)
            if use is not None:
                row["cpu"] = {**asdict(use), "others_cores": round(use.others_cores, 3)}
            runs = results.runs.get(key, [])
            if len(runs) > 1:  # the row above is the median of these
                row["runs"] = [
                    {"requests_per_s": r.requests_per_s, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}
                    for r, _ in runs
                ]
        else:
            row["skipped"] = results.skipped.get(key, "not run")
        rows.append(row)
    return {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": settings.command,
        "interrupted": interrupted,
        "duration_s": round(finished - started, 1),
        "machine": dict(machine),
        "settings": {**asdict(settings), **fixture},
        "gateway_features": results.features,
        "route_check": results.route_check,
        "rows": rows,
        "streams": [s.as_dict() for s in results.streams],
        "verify": [asdict(c) for c in results.costs],
        "cache_bound": results.bound.as_dict() if results.bound else None,
        "auth": [a.as_dict() for a in results.auth] if results.auth else results.auth_unavailable,
        "profile": results.profile.as_dict() if results.profile else None,
        "targets": [v.as_dict() for v in verdicts],
        "notes": results.notes,
    }


def save(path: Path, document: Mapping[str, Any]) -> None:
    """Write the run as indented JSON (the results folder is created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
