"""uvicorn's httptools protocol with a bound on the request head.

httptools buffers a request line and headers for as long as they keep coming: a client that
never finishes its headers can make a worker hold any amount of memory. This protocol counts the
bytes of each request head as they arrive and, past ``MAX_HEAD_BYTES``, answers 431 and closes
the connection before they pile up. (The front door's tighter 32 KiB check on complete headers
still gives the ordinary 431.)
"""

from __future__ import annotations

import json
from typing import Any

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
