"""The supervisor replaces dead workers for as long as it runs, and gives up only on a crash loop."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.ops.supervisor import CRASH_LIMIT, CRASH_WINDOW, CrashLoop
from tests.configs import route
from tests.conftest import GatewayProcess
from tests.upstream import Upstream
from tests.waiting import eventually


def test_workers_dying_now_and_then_are_replaced_forever() -> None:
    loop = CrashLoop(workers=2)
    # A worker killed every five minutes for a week: never a loop.
    assert not any(loop.record(minute * 300.0) for minute in range(2016))


def test_more_exits_than_the_limit_within_the_window_is_a_loop() -> None:
    loop = CrashLoop(workers=2)
    exits = [loop.record(second * 0.5) for second in range(2 * CRASH_LIMIT + 1)]
    assert exits == [False] * (2 * CRASH_LIMIT) + [True]


def test_exits_older_than_the_window_are_forgotten() -> None:
    loop = CrashLoop(workers=1)
    for second in range(CRASH_LIMIT):
        assert not loop.record(float(second))
    assert not loop.record(CRASH_LIMIT + CRASH_WINDOW)


def _workers_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_crash_loop_stops_the_gateway_with_a_failure_status(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(
        {"routes": [route("app", "/app", f"http://127.0.0.1:{port}", auth="public")]}, workers=2
    )
    killed: set[int] = set()

    def stopped() -> bool:
        for worker in _workers_of(gateway.proc.pid):
            if worker not in killed:
                killed.add(worker)
                os.kill(worker, signal.SIGKILL)
        return gateway.proc.poll() is not None

    eventually(stopped, timeout=90, interval=0.2)
    assert gateway.proc.returncode == 3
    assert len(killed) > 2 * CRASH_LIMIT
    assert "workers keep crashing; stopping" in gateway.stderr()


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_gateway_goes_on_serving(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(
        {"routes": [route("app", "/app", f"http://127.0.0.1:{port}", auth="public")]}, workers=2
    )
    first = eventually(lambda: len(workers := _workers_of(gateway.proc.pid)) == 2 and workers)
    os.kill(first[0], signal.SIGKILL)
    eventually(lambda: len(set(_workers_of(gateway.proc.pid)) - set(first)) == 1, timeout=30)
    assert httpx.get(f"{gateway.url}/app/x").status_code == 200
    assert gateway.proc.poll() is None
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(60) == 0
