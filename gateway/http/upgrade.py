"""An upstream connection that may switch protocols: the upstream leg of a WebSocket.

It asks like any ``client.Connection`` and reads the answer the same way; an answer other than
``101`` is an ordinary answer (read and relayed as such, then the connection is closed, since
an upgrade request is never pooled). A ``101`` with ``Upgrade`` ends the HTTP part: reading
stops at once, and whatever followed the head waits in ``rest`` until the caller hands the
transport to its own protocol (``take_over``).
"""

from __future__ import annotations

import asyncio

from gateway.http.client import Connection, Pool

__all__ = ["UpgradeConnection"]


class UpgradeConnection(Connection):
    """One connection carrying an upgrade request; never returned to the pool."""

    def __init__(self, pool: Pool, key: tuple[str, int, bool]) -> None:
        super().__init__(pool, key)
        self.upgraded = False
        self.rest = b""

    def on_headers_complete(self) -> None:
        if self._parser.get_status_code() != 101:
            super().on_headers_complete()
            return
        self.status = 101
        self.headers = self._raw
        self._raw = []
        self.keep_alive = False
        self.complete = True  # no body: the bytes after the head are the new protocol's
        self._wake()

    def _upgraded(self, rest: bytes) -> None:
        self.upgraded = True
        self.rest = rest
        assert self.transport is not None
        self.transport.pause_reading()  # until ``take_over``: nothing is buffered meanwhile
        self._wake()

    def take_over(self, protocol: asyncio.Protocol) -> asyncio.Transport:
        """Hand the switched connection to ``protocol`` (with ``rest`` first); its transport."""
        transport = self.transport
        if transport is None or transport.is_closing() or self.failure is not None:
            raise ConnectionResetError("the upstream closed the connection")
        self._active = False
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        rest, self.rest = self.rest, b""
        if rest:
            protocol.data_received(rest)
        transport.resume_reading()
        return transport
