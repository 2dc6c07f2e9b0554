"""The acceptor takes a whole burst of queued connections per turn of a busy event loop."""

from __future__ import annotations

import asyncio
import socket
import time

import uvloop

from gateway.http.acceptor import Acceptor

BURST = 100
TURN_SECONDS = 0.005


async def _turns_to_serve_a_burst(serve: str) -> int:
    """Turns of a loop kept busy ``TURN_SECONDS`` per turn until every queued client is served."""
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0), backlog=BURST * 2)
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(BURST)]
    made: list[asyncio.BaseTransport] = []

    class Counting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(transport)

    turns = 0

    def busy() -> None:  # a worker busy with other connections: every turn takes a while
        nonlocal turns
        turns += 1
        time.sleep(TURN_SECONDS)
        if len(made) < BURST and turns < 10 * BURST:
            loop.call_soon(busy)

    if serve == "acceptor":
        acceptor = Acceptor(loop, listener, Counting)
    else:
        server = await loop.create_server(Counting, sock=listener)
    try:
        loop.call_soon(busy)
        while len(made) < BURST and turns < 10 * BURST:
            await asyncio.sleep(0.01)
        return turns
    finally:
        if serve == "acceptor":
            acceptor.close()
            listener.close()
        else:
            server.close()
        for transport in made:
            transport.close()
        for client in clients:
            client.close()


def test_a_burst_of_queued_connections_is_served_in_a_few_turns_of_a_busy_loop() -> None:
    # uvloop's own server (libuv) accepts one connection a turn: a burst waited a turn each.
    turns = uvloop.run(_turns_to_serve_a_burst("acceptor"))
    assert turns <= 10, turns


def test_the_loops_own_server_needs_a_turn_per_connection() -> None:
    # Why the acceptor exists; if libuv ever takes a burst at once, the acceptor can go.
    turns = uvloop.run(_turns_to_serve_a_burst("uvloop server"))
    assert turns >= BURST // 2, turns
