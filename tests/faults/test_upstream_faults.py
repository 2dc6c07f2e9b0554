"""An upstream that resets mid-body or stalls mid-head: the documented 502 or 504, never a 500.

The upstream is a raw TCP server (a real socket, not an HTTP framework, which would never send
half a head): it reads the request head and then misbehaves as its path says.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.configs import route
from tests.conftest import GatewayProcess
from tests.waiting import eventually

BODY = b"x" * 100_000


class RudeUpstream:
    """Answers ``/ok``; resets before answering, resets mid-body, or stalls mid-head."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.sock.close()
        for conn in self._open:
            conn.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                more = conn.recv(65536)
                if not more:
                    return
                head += more
        except OSError:
            return
        path = head.split(b" ", 2)[1]
        reset = struct.pack("ii", 1, 0)
        if path.startswith(b"/ok"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif path.startswith(b"/reset-before-head"):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
            conn.close()
        elif path.startswith(b"/reset-mid-body"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY))
            conn.sendall(BODY[:1000])
            time.sleep(0.2)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
            conn.close()
        elif path.startswith(b"/stall-mid-head"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Ty")  # and nothing more, ever


@pytest.fixture
def gateway(start_gateway: Callable[..., GatewayProcess]) -> Iterator[GatewayProcess]:
    upstream = RudeUpstream()
    target = f"http://127.0.0.1:{upstream.port}"
    yield start_gateway(
        {"routes": [route("rude", "/", target, auth="public", timeout="1s")]}, workers=1
    )
    upstream.close()


def _logged_statuses(gateway: GatewayProcess, count: int) -> list[int]:
    def lines() -> list[int]:
        statuses = [json.loads(line)["status"] for line in gateway.stdout().splitlines() if line]
        assert len(statuses) >= count
        return statuses

    return eventually(lines)


def test_an_upstream_reset_before_its_answer_is_502(gateway: GatewayProcess) -> None:
    answer = httpx.get(f"{gateway.url}/reset-before-head")
    assert (answer.status_code, answer.json()["error"]) == (502, "bad_gateway")
    assert httpx.get(f"{gateway.url}/ok").status_code == 200


def test_an_upstream_that_stalls_mid_head_is_504(gateway: GatewayProcess) -> None:
    answer = httpx.get(f"{gateway.url}/stall-mid-head", timeout=10)
    assert (answer.status_code, answer.json()["error"]) == (504, "gateway_timeout")
    assert httpx.get(f"{gateway.url}/ok").status_code == 200


def test_an_upstream_reset_mid_body_cuts_the_client_connection_and_is_no_500(
    gateway: GatewayProcess,
) -> None:
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", f"{gateway.url}/reset-mid-body") as answer,
    ):
        assert answer.status_code == 200  # the head had gone out: the body is cut short
        answer.read()
    assert httpx.get(f"{gateway.url}/ok").status_code == 200
    statuses = _logged_statuses(gateway, 2)
    assert 500 not in statuses
    assert "Traceback" not in gateway.stderr()
