"""The client address the rules above the wire read (gateway/http/peers.py)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from gateway.http.peers import unmapped
from tests.http.test_server import serve


def test_an_ipv4_mapped_address_is_read_as_the_ipv4_address() -> None:
    assert unmapped(("::ffff:192.0.2.7", 4321)) == ("192.0.2.7", 4321)


def test_an_ipv6_address_stays_as_it_is() -> None:
    assert unmapped(("2001:db8::1", 80)) == ("2001:db8::1", 80)


def test_an_ipv4_address_and_no_address_stay_as_they_are() -> None:
    assert unmapped(("192.0.2.7", 80)) == ("192.0.2.7", 80)
    assert unmapped(None) is None


def _dual_stack_socket() -> socket.socket:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 sockets")
    sock = socket.socket(socket.AF_INET6)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", 0))
    except OSError as exc:
        sock.close()
        pytest.skip(f"no dual-stack IPv6 listener on this machine: {exc}")
    return sock


async def test_an_ipv4_client_of_a_dual_stack_listener_is_seen_by_its_ipv4_address() -> None:
    seen: list[Any] = []

    async def client_of(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["client"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    served, task = await serve(client_of, sock=_dual_stack_socket())
    try:
        answer = await served.exchange(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    finally:
        served.server.should_exit = True
        await task
    assert answer.startswith(b"HTTP/1.1 204")
    assert seen[0][0] == "127.0.0.1"
