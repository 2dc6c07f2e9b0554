"""Graceful stop on SIGTERM (docs/behaviour.md#reload-and-signals): in-flight requests finish, the process exits 0."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import httpx
import pytest

from tests.configs import route
from tests.conftest import GatewayProcess
from tests.upstream import Upstream
from tests.waiting import eventually


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_a_3_second_call_finish_and_exits_0(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess], workers: int
) -> None:
    app, port = upstream
    gateway = start_gateway(
        {"routes": [route("slow", "/slow", f"http://127.0.0.1:{port}", auth="public")]},
        workers=workers,
    )
    result: dict[str, object] = {}

    def call() -> None:
        try:
            result["status"] = httpx.get(f"{gateway.url}/slow?seconds=3", timeout=10).status_code
        except httpx.HTTPError as exc:
            result["error"] = repr(exc)

    thread = threading.Thread(target=call)
    thread.start()
    eventually(lambda: any(seen.path == "/slow" for seen in app.seen))  # the call is under way
    gateway.proc.send_signal(signal.SIGTERM)
    thread.join(15)
    assert result == {"status": 200}
    assert gateway.proc.wait(15) == 0
    assert "Traceback" not in gateway.stderr()
