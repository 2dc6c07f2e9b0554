"""What the gateway's HTTP server and its application tell each other beyond plain ASGI.

The server (``server.py``) runs any ASGI application; the gateway's front door uses three more
things, each named here so that neither side reaches into the other:

- ``REQUEST_ID_SCOPE_KEY``: the application names the request's id in the scope as soon as it
  knows it, so that an answer the server gives itself (a body that stalls: 408; one that cannot
  be parsed: 400) echoes it in ``X-Request-ID``.
- ``ClientGone``: how the application learns that its client is gone, and what the client last
  got. ``receive`` returns ``http.disconnect`` with the status under ``DISCONNECT_STATUS_KEY``;
  ``send`` raises ``ClientDisconnected`` (an ``OSError``, as ASGI 2.4 asks) carrying it.
  ``gone_status`` reads either. 499 means the client closed the connection itself.
- ``SWITCH_SCOPE_KEY``: on an upgrade request (``Connection: Upgrade``), the scope holds a
  ``SwitchProtocols`` callable. The application that calls it (after its own checks and the
  upstream's ``101``) writes the answer's head and takes the connection over as raw bytes: from
  then on the server hands every callback of the connection to a ``Tunnel``. An application
  that answers normally instead gets its answer sent, then the connection closed (what follows
  the head is not HTTP/1.1).
- ``RefusalLog``: an application that has it is told of each request the server refused before
  the application saw it (400, 431), so that it gets an access-log line like every other; it
  returns the request id the server then echoes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CLIENT_CLOSED",
    "DISCONNECT_STATUS_KEY",
    "REQUEST_ID_SCOPE_KEY",
    "SWITCH_SCOPE_KEY",
    "App",
    "ClientDisconnected",
    "Message",
    "Receive",
    "RefusalLog",
    "Send",
    "SwitchProtocols",
    "Tunnel",
    "gone_status",
]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

REQUEST_ID_SCOPE_KEY = "gateway.request_id"
DISCONNECT_STATUS_KEY = "gateway.status"
SWITCH_SCOPE_KEY = "gateway.switch_protocols"
CLIENT_CLOSED = 499  # nginx's figure for a client that closed the connection before its answer


class ClientDisconnected(OSError):
    """``send`` on a connection whose client is gone; ``status`` is what the access log records."""

    def __init__(self, message: str, status: int = CLIENT_CLOSED) -> None:
        super().__init__(message)
        self.status = status


def gone_status(evidence: BaseException | Mapping[str, Any]) -> int:
    """The status to log for a client gone: from a disconnect message or a send's exception."""
    if isinstance(evidence, ClientDisconnected):
        return evidence.status
    if isinstance(evidence, BaseException):
        return CLIENT_CLOSED
    status = evidence.get(DISCONNECT_STATUS_KEY, CLIENT_CLOSED)
    return status if isinstance(status, int) else CLIENT_CLOSED


@runtime_checkable
class RefusalLog(Protocol):
    """An application that logs the requests the server refused before handing them over."""

    def refused(self, status: int, client: str) -> str:
        """Record the refusal; the request id to echo on the server's answer."""
        ...


class Tunnel(asyncio.Protocol):
    """What takes a client connection over after a protocol switch (``SwitchProtocols``).

    It gets the asyncio protocol callbacks of the connection (``connection_made`` with the
    transport first, then any bytes that followed the request head), and ``shutdown`` when
    the server stops gracefully, once the HTTP requests in flight on other connections are
    answered."""

    def shutdown(self) -> None:
        """The server is stopping: end the connection."""


# Write ``head`` (the 101 answer) and hand the connection to the tunnel. Raises
# ``ClientDisconnected`` when the client is already gone.
SwitchProtocols = Callable[[bytes, Tunnel], None]
