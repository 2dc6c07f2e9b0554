"""The benchmark measures what it says: its configuration loads, its cache-defeated row misses."""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
from pathlib import Path

import pytest

from bench import wrk
from bench.cpu import CpuUse, pinned
from bench.fixture import write_gateway_config
from bench.plan import MANY_ROUTES, Settings, median_run
from gateway.auth.verifier import Verifier
from gateway.config import load_config


@pytest.mark.parametrize("extra", [0, MANY_ROUTES], ids=["30 routes", "the large table"])
def test_the_benchmark_routes_yaml_loads(tmp_path: Path, extra: int) -> None:
    fixture = write_gateway_config(
        tmp_path,
        port=18000,
        admin_port=18001,
        upstream="http://127.0.0.1:18002",
        stream_upstream="http://127.0.0.1:18003",
        extra_routes=extra,
    )
    config = load_config(fixture.config)
    assert len(config.routes) == 30 + extra


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_the_cache_defeated_row_sends_more_tokens_than_two_worker_caches_hold(quick: bool) -> None:
    # Fewer, and after one pass every request of the row would be a cache hit.
    settings = Settings.from_args(
        argparse.Namespace(quick=quick, seconds=None, no_install=True, profile=False)
    )
    cache_size = inspect.signature(Verifier).parameters["cache_size"].default
    assert settings.rotating_tokens > 2 * cache_size


def test_the_requests_over_one_and_two_seconds_are_read_from_wrk() -> None:
    report = (
        "  Latency Distribution\n     50%  12.00ms\n     75%   20.00ms\n     90%   40.00ms\n"
        "     99%    1.50s\n  1000 requests in 10.00s, 1.00MB read\n"
        "  Socket errors: connect 0, read 0, write 0, timeout 2\n"
        "Requests/sec:    100.00\nover 1s: 7\nover 2s: 1\n"
    )
    result = wrk.parse(report)
    assert (result.over_1s, result.over_2s, result.timeouts) == (7, 1, 2)


def test_a_row_measured_in_alternating_runs_keeps_its_median_run() -> None:
    def run(per_second: float) -> tuple[wrk.WrkResult, CpuUse]:
        return wrk.WrkResult(per_second, 1.0, 2.0, 100, 10.0, 0, 0), CpuUse(server=per_second)

    kept, use = median_run([run(9_000), run(12_000), run(10_000)])
    assert (kept.requests_per_s, use.server) == (10_000, 10_000)
    assert median_run([run(9_000), run(12_000)])[0].requests_per_s == 9_000  # the lower middle


def test_a_full_run_alternates_the_haproxy_comparison_three_times_and_quick_once() -> None:
    full = Settings.from_args(
        argparse.Namespace(quick=False, seconds=None, no_install=True, profile=False)
    )
    quick = Settings.from_args(
        argparse.Namespace(quick=True, seconds=None, no_install=True, profile=False)
    )
    assert (full.rounds, quick.rounds) == (3, 1)


def test_a_c1_row_pins_its_processes_to_one_cpu_and_lets_them_go_after() -> None:
    everywhere = os.sched_getaffinity(0)
    if len(everywhere) < 2:
        pytest.skip("one CPU: nothing to pin")
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        with pinned([child.pid]):
            assert os.sched_getaffinity(child.pid) == {0}
        assert os.sched_getaffinity(child.pid) == everywhere
    finally:
        child.kill()
        child.wait()
