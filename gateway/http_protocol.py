"""uvicorn's httptools protocol: a bound on the request head, one write per small answer.

httptools buffers a request line and headers for as long as they keep coming: a client that
never finishes its headers can make a worker hold any amount of memory. This protocol counts the
bytes of each request head as they arrive and, past ``MAX_HEAD_BYTES``, answers 431 and closes
the connection before they pile up. (The front door's tighter 32 KiB check on complete headers
still gives the ordinary 431.)

uvicorn writes a response's head as soon as the application starts the response, then each body
part: two ``send`` syscalls for an answer that is ready whole, which is most API answers. The
response cycle here writes through ``HeadHolder``, which keeps the head until the first body
part joins it, or until the end of the current event-loop step when no body part follows.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024

_BODY = json.dumps(
    {
        "error": "request_header_fields_too_large",
        "error_description": "The request headers are too large",
    }
).encode()
_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _BODY
)


_JOIN_BELOW = 64 * 1024  # past this, a copy costs more than a vectored write


class HeadHolder:
    """The transport as a response cycle sees it: its first write waits for its second."""

    __slots__ = ("_held", "_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._pending = True

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) < _JOIN_BELOW:
                self._transport.write(held + data)
            else:
                self._transport.writelines((held, data))
        elif self._pending:
            self._pending = False
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Refuses a request head larger than ``MAX_HEAD_BYTES`` while it is still arriving."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        was_in_head = self._in_head
        super().data_received(data)
        # Only data that left the head still incomplete counts: a chunk that completes the
        # head may carry the start of the body, which is not the head's.
        if was_in_head and self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.transport.write(_REFUSAL)
                self.transport.close()

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = cast(asyncio.Transport, HeadHolder(self.transport, self.loop))
