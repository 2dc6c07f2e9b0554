"""Accepting every connection waiting on a listening socket each time it becomes readable.

uvloop's servers accept through libuv, which takes one connection per turn of the event loop.
A worker busy with a thousand connections turns its loop about ten times a second, so
connections that arrived in a burst waited in the kernel's queue for seconds: at 1,000
connections (bench/, ``c=1000``) a tenth of wrk's connections got their first answer only when
the run ended, hundreds of requests took over a second, and the listen queue held 300-500
connections throughout. This acceptor drains the queue, up to ``MAX_PER_WAKE`` connections a
turn, and hands each one to the event loop as an accepted socket with the same protocol.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

__all__ = ["MAX_PER_WAKE", "Acceptor"]

# Enough for any burst a worker can serve; a bound so one wake-up cannot hold the loop long.
MAX_PER_WAKE = 256
# Out of descriptors: how long to stop watching the socket before trying again, so the loop
# does not spin on a queue it cannot take from (the kernel keeps the connections queued).
_PAUSE_WHEN_FULL = 0.1

_log = logging.getLogger("gateway.http")


class Acceptor:
    """Accepts connections on ``sock`` and serves each with a protocol from ``factory``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[], asyncio.Protocol],
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.factory = factory
        self.tasks: set[asyncio.Task[object]] = set()
        self._watching = False
        self._closed = False
        self._warned = False
        sock.setblocking(False)
        self._watch()

    def close(self) -> None:
        """Stop accepting; connections already accepted go on."""
        self._closed = True
        self._unwatch()

    def _watch(self) -> None:
        if not self._watching and not self._closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self.loop.remove_reader(self.sock.fileno())
            self._watching = False

    def _accept(self) -> None:
        for _ in range(MAX_PER_WAKE):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue  # the client gave up while queued: nothing to serve
                if not self._warned:
                    self._warned = True
                    _log.warning("cannot accept connections: %s", exc.strerror)
                self._unwatch()
                self.loop.call_later(_PAUSE_WHEN_FULL, self._watch)
                return
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self.loop.create_task(self._serve(conn))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _serve(self, conn: socket.socket) -> object:
        try:
            return await self.loop.connect_accepted_socket(self.factory, conn)
        except OSError:
            conn.close()  # the client left before its transport was made
            return None
