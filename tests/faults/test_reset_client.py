"""A client that resets its connection right after sending a request: the access log still
names its address (read when the connection was accepted, not after the reset)."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable

from tests.configs import route
from tests.conftest import GatewayProcess
from tests.upstream import Upstream
from tests.waiting import eventually


def _send_and_reset(port: int, request: bytes) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(request)
    # SO_LINGER 0: close() sends RST at once instead of FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_request_whose_connection_the_client_reset_is_logged_with_its_address(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(
        {"routes": [route("app", "/app", f"http://127.0.0.1:{port}", auth="public")]}
    )
    for _ in range(20):
        _send_and_reset(gateway.port, b"GET /slow?seconds=0.2 HTTP/1.1\r\nHost: a\r\n\r\n")
        _send_and_reset(gateway.port, b"GET /app/x HTTP/1.1\r\nHost: a\r\n\r\n")
        _send_and_reset(gateway.port, b"BROKEN\r\n\r\n")

    def logged() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in gateway.stdout().splitlines() if line.strip()]
        assert len(lines) >= 10, gateway.stdout()
        return lines

    lines = eventually(logged, timeout=5)
    assert [line for line in lines if line["client"] != "127.0.0.1"] == []
