"""The supervisor replaces dead workers for as long as it runs, and gives up only on a crash loop."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.ops.supervisor import CRASH_LIMIT, CRASH_WINDOW, CrashLoop
from tests.configs import route
from tests.conftest import GatewayProcess, worker_pids
from tests.tokens import ISSUER, SigningKey
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
        for worker in worker_pids(gateway.proc.pid):
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
    first = eventually(lambda: len(workers := worker_pids(gateway.proc.pid)) == 2 and workers)
    os.kill(first[0], signal.SIGKILL)
    eventually(lambda: len(set(worker_pids(gateway.proc.pid)) - set(first)) == 1, timeout=30)
    assert httpx.get(f"{gateway.url}/app/x").status_code == 200
    assert gateway.proc.poll() is None
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(60) == 0


def _replace_a_worker(gateway: GatewayProcess) -> None:
    """Kill one worker and return once the supervisor has started its replacement."""
    before = eventually(lambda: len(workers := worker_pids(gateway.proc.pid)) == 2 and workers)
    os.kill(before[0], signal.SIGKILL)
    eventually(lambda: len(set(worker_pids(gateway.proc.pid)) - set(before)) == 1, timeout=30)


def _statuses(url: str, headers: dict[str, str] | None = None, count: int = 40) -> set[int]:
    """Statuses of ``count`` requests, each on a new connection (so both workers answer)."""
    return {httpx.get(url, headers=headers).status_code for _ in range(count)}


@pytest.fixture
def keyed(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess], tmp_path: Path
) -> tuple[GatewayProcess, dict[str, str], Path]:
    _, port = upstream
    key = SigningKey(tmp_path / "keys")
    gateway = start_gateway(
        {
            "tokens": {"issuer": ISSUER, "keys": "./keys"},
            "routes": [route("api", "/api", f"http://127.0.0.1:{port}")],
        },
        workers=2,
    )
    bearer = {"Authorization": f"Bearer {key.token()}"}
    assert _statuses(f"{gateway.url}/api/x", bearer) == {200}
    return gateway, bearer, tmp_path / "keys"


@pytest.mark.slow
def test_a_restarted_worker_serves_the_routes_the_others_serve(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    target = f"http://127.0.0.1:{port}"
    gateway = start_gateway({"routes": [route("a", "/a", target, auth="public")]}, workers=2)
    config = yaml.safe_load(gateway.config_path.read_text())
    config["routes"].append(route("b", "/b", target, auth="public"))
    gateway.config_path.write_text(yaml.safe_dump(config))
    eventually(lambda: _statuses(f"{gateway.url}/b/x", count=10) == {200}, timeout=10)
    time.sleep(1.5)  # the supervisor's copy follows the files every second
    _replace_a_worker(gateway)
    # The new worker answers from its first request: no 404 while its watcher catches up.
    assert _statuses(f"{gateway.url}/b/x", count=60) == {200}


@pytest.mark.slow
def test_a_worker_restarted_while_a_key_file_is_broken_keeps_the_last_good_keys(
    keyed: tuple[GatewayProcess, dict[str, str], Path],
) -> None:
    gateway, bearer, keys = keyed
    (keys / "zz-broken.pem").write_text("not a key")
    eventually(lambda: "reload refused" in gateway.stderr(), timeout=10)
    _replace_a_worker(gateway)
    assert _statuses(f"{gateway.url}/api/x", bearer) == {200}
    assert gateway.proc.poll() is None  # the gateway did not stop


@pytest.mark.slow
def test_a_worker_restarted_with_the_keys_folder_emptied_creates_no_key(
    keyed: tuple[GatewayProcess, dict[str, str], Path],
) -> None:
    gateway, bearer, keys = keyed
    for pem in keys.glob("*.pem"):
        pem.unlink()
    eventually(lambda: "reload refused" in gateway.stderr(), timeout=10)
    _replace_a_worker(gateway)
    assert _statuses(f"{gateway.url}/api/x", bearer) == {200}
    assert list(keys.glob("*.pem")) == []
