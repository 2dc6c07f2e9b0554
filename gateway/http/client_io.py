"""Writing to a client connection and pausing its reads: the server's flow control.

``server.GatewayHttpProtocol`` inherits these; ``cycle.RequestCycle`` calls them to write an
answer and wait while the client is not reading.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from gateway.http.contract import ClientDisconnected
from gateway.http.cycle import expire

__all__ = ["ClientIO"]


class ClientIO:
    """Writes, drains and read pauses of one client connection."""

    # nginx's send_timeout: the longest a client may take nothing while an answer waits.
    send_timeout = 60.0

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    write_paused: bool
    _drain: asyncio.Future[None] | None
    _read_paused: bool
    _pipeline: deque[Any]
    _closing: bool

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.writelines(parts)

    async def drain(self) -> None:
        """Wait until the client takes more; one that takes nothing for ``send_timeout`` is
        cut off, so a client that stops reading cannot hold its request (and the upstream
        connection behind it) for as long as it stays connected."""
        if self.write_paused:
            drain = self._drain = self.loop.create_future()
            timer = self.loop.call_later(self.send_timeout, expire, drain)
            try:
                await drain
            except TimeoutError:
                if self.transport is not None:
                    self.transport.abort()
                raise ClientDisconnected("the client stopped reading") from None
            finally:
                timer.cancel()
                self._drain = None

    def pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused and self.transport is not None and not self._pipeline:
            self._read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self._closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
