"""Connections switched to another protocol: the hand-over, and their end at a graceful stop.

After a ``101`` the server (``server.py``) keeps the connection's asyncio protocol and passes
its callbacks on to the application's ``Tunnel`` (``contract.py``). At a graceful stop the
HTTP requests in flight come first: tunnels are told to end once every other connection of the
server has closed, by one waiting task per server however many tunnels are open.
"""

from __future__ import annotations

import asyncio
import weakref

from uvicorn.server import ServerState

from gateway.http.contract import Tunnel

__all__ = ["end_after_requests", "hand_over"]

_ENDING: weakref.WeakKeyDictionary[ServerState, list[Tunnel]] = weakref.WeakKeyDictionary()


def hand_over(
    transport: asyncio.Transport, head: bytes, tunnel: Tunnel, rest: bytes, *, paused: bool
) -> None:
    """Write the ``101`` head, give ``tunnel`` the connection and the bytes that followed the
    request head (``rest``), and read on (reading stopped at the upgrade request)."""
    transport.write(head)
    tunnel.connection_made(transport)
    if rest:
        tunnel.data_received(rest)
    if paused:
        tunnel.pause_writing()
    transport.resume_reading()


def end_after_requests(state: ServerState, tunnel: Tunnel) -> None:
    """Call ``tunnel.shutdown`` once every connection of ``state`` that is not a tunnel has
    closed, that is once the HTTP requests in flight are answered."""
    waiting = _ENDING.get(state)
    if waiting is None:
        waiting = _ENDING[state] = []
        task = asyncio.get_running_loop().create_task(_when_requests_done(state, waiting))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
    waiting.append(tunnel)


async def _when_requests_done(state: ServerState, waiting: list[Tunnel]) -> None:
    # Polled, as uvicorn's own graceful stop polls its connections: no event says "closed".
    while any(not getattr(conn, "tunnelled", False) for conn in state.connections):  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    while waiting:
        waiting.pop().shutdown()
    _ENDING.pop(state, None)
