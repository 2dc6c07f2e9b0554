"""The worker's keep-alive connections to upstreams: reuse the warmest, close the stale.

Connections are filed by (host, port, TLS) and reused most recently used first, so a burst
leaves the others to idle out; idle ones are closed after ``IDLE_TIMEOUT`` (below the usual
upstream keep-alive) by one sweep timer per pool, and at most ``MAX_IDLE_PER_TARGET`` are kept.
TLS is verified against the system's trust store (``SSL_CERT_FILE`` adds a private CA).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from functools import partial

from gateway.http.client import Connection
from gateway.http.target import Target

__all__ = ["CONNECT_TIMEOUT", "IDLE_TIMEOUT", "MAX_IDLE_PER_TARGET", "UpstreamPool"]

CONNECT_TIMEOUT = 5.0
IDLE_TIMEOUT = 30.0  # below the usual upstream keep-alive (nginx 75 s, Node 5 s is the outlier)
MAX_IDLE_PER_TARGET = 1024  # a worker at 1,000 busy connections; fewer churned (bench c=1000)
_SWEEP_EVERY = 10.0
Key = tuple[str, int, bool]


class UpstreamPool:
    """The worker's keep-alive connections, by (host, port, TLS); most recently used first."""

    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        max_idle: int = MAX_IDLE_PER_TARGET,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int, bool], list[Connection]] = {}
        self._tls: ssl.SSLContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def connect(self, target: Target) -> tuple[Connection, bool]:
        """A connection to ``target`` and whether it was reused.

        Raises ``TimeoutError`` when no connection is made within the connect timeout and
        ``OSError`` when it is refused or the name does not resolve."""
        idle = self._idle.get(target.key)
        if idle:
            deadline = self.loop.time() - self.idle_timeout
            while idle:
                conn = idle.pop()
                if conn.idle_since > deadline and conn.failure is None:
                    return conn, True
                conn.close()
        return await self.open(target), False

    async def open(
        self, target: Target, protocol: Callable[[UpstreamPool, Key], Connection] = Connection
    ) -> Connection:
        """A new connection to ``target`` (``protocol``: the class, for an upgrade's)."""
        tls: ssl.SSLContext | None = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await self.loop.create_connection(
                partial(protocol, self, target.key),
                target.host,
                target.port,
                ssl=tls,
                server_hostname=target.host if tls is not None else None,
            )
        return conn

    def keep(self, conn: Connection) -> None:
        if self._closed:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        idle = self._idle.setdefault(conn.key, [])
        idle.append(conn)
        if len(idle) > self.max_idle:
            idle.pop(0).close()
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(_SWEEP_EVERY, self._sweep)

    def forget(self, conn: Connection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    def _sweep(self) -> None:
        """Close what idled past the timeout (the oldest sit at the bottom of each stack)."""
        self._sweeper = None
        deadline = self.loop.time() - self.idle_timeout
        for idle in self._idle.values():
            while idle and idle[0].idle_since <= deadline:
                idle.pop(0).close()
        if any(self._idle.values()):
            self._sweeper = self.loop.call_later(_SWEEP_EVERY, self._sweep)
