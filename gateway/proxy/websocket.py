"""WebSocket handshakes: checked and authorised like any request, then relayed for their life.

What users see: docs/behaviour.md#websockets-and-event-streams.

In order, before any upstream connection is made:

1. the route must say ``websocket: true``; an upgrade anywhere else is 400 (the bytes after its
   head are not HTTP/1.1, so it is never forwarded as a plain request);
2. the handshake must be RFC 6455's: ``GET``, ``Upgrade: websocket``, one
   ``Sec-WebSocket-Key`` and ``Sec-WebSocket-Version: 13``;
3. on a route that is not public, an ``Origin`` other than the gateway's own or a CORS origin is
   refused (403): a browser attaches cookies to a cross-site WebSocket handshake, and the page
   that opened it could read the answers (cross-site WebSocket hijacking). This holds however
   the token came, since a page can also be given a token;
4. the token is checked exactly as for HTTP; a browser, which cannot set ``Authorization`` on a
   WebSocket, may offer it as a ``bearer.<token>`` entry of ``Sec-WebSocket-Protocol``. That
   entry never goes upstream, and an upstream choosing it is not echoed, so the token is not
   repeated in any answer or upstream log;
5. the route's rate limit.

The upstream then gets the handshake with the usual header rules (``headers.py``) plus the
WebSocket headers. Its answer other than ``101`` goes back as an ordinary answer; after a
``101`` the relay (``relay.py``) carries the frames, and the authority watch (``authority.py``)
ends the socket when the token expires or its session is revoked.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from typing import NamedTuple

from gateway.config import Route
from gateway.http.client import UpstreamBroken
from gateway.http.pool import UpstreamPool
from gateway.http.target import Target, request_head
from gateway.http.upgrade import UpgradeConnection
from gateway.proxy.answers import Refusal
from gateway.proxy.forward import UpstreamError, UpstreamTimeout, UpstreamUnreachable

__all__ = [
    "UPGRADE_HEADERS",
    "Handshake",
    "answer_head",
    "open_upstream",
    "read_handshake",
    "upstream_headers",
]

_NOT_A_ROUTE = Refusal(400, "This route does not accept WebSocket upgrades")
_BEARER = b"bearer."
_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\n"
_UPGRADED = b"connection: Upgrade\r\nupgrade: websocket\r\nx-request-id: "


class Handshake(NamedTuple):
    """What a valid handshake offered: the subprotocols to pass on, and a token if one."""

    protocols: tuple[bytes, ...]
    token: str | None


def read_handshake(
    route: Route, method: str, headers: Iterable[tuple[bytes, bytes]]
) -> Refusal | Handshake:
    """The handshake's offer, or the 400 that refuses it (checks 1 and 2 above)."""
    if not route.websocket:
        return _NOT_A_ROUTE
    upgrade = version = b""
    keys = 0
    key = b""
    protocols: list[bytes] = []
    token: str | None = None
    for name, value in headers:
        if name == b"upgrade":
            upgrade = value
        elif name == b"sec-websocket-version":
            version = value
        elif name == b"sec-websocket-key":
            keys += 1
            key = value.strip()
        elif name == b"sec-websocket-protocol":
            for part in value.split(b","):
                item = part.strip()
                if item[:7].lower() == _BEARER:
                    if token is not None:
                        return Refusal(400, "More than one bearer entry in Sec-WebSocket-Protocol")
                    token = item[7:].decode("latin-1")
                elif item:
                    protocols.append(item)
    if method != "GET" or b"websocket" not in [p.strip().lower() for p in upgrade.split(b",")]:
        return Refusal(400, "A WebSocket handshake is a GET with Upgrade: websocket")
    if version.strip() != b"13":
        return Refusal(
            400,
            "Only WebSocket version 13 is supported",
            headers=((b"sec-websocket-version", b"13"),),
        )
    if keys != 1 or not _is_key(key):
        return Refusal(400, "A WebSocket handshake needs one valid Sec-WebSocket-Key")
    return Handshake(tuple(protocols), token)


def _is_key(key: bytes) -> bool:
    try:
        return len(binascii.a2b_base64(key)) == 16 and len(key) == 24
    except binascii.Error:
        return False


def upstream_headers(
    headers: list[tuple[bytes, bytes]], protocols: tuple[bytes, ...]
) -> list[tuple[bytes, bytes]]:
    """The client's headers with the offered subprotocols rewritten without the bearer entry."""
    out = [(n, v) for n, v in headers if n != b"sec-websocket-protocol"]
    if protocols:
        out.append((b"sec-websocket-protocol", b", ".join(protocols)))
    return out


# Added to what the header policy passes: the hop-by-hop headers of the handshake itself.
UPGRADE_HEADERS = ((b"connection", b"Upgrade"), (b"upgrade", b"websocket"))


async def open_upstream(
    pool: UpstreamPool,
    targets: list[Target],
    *,
    path: bytes,
    headers: list[tuple[bytes, bytes]],
    timeout: float,
) -> tuple[Target, UpgradeConnection]:
    """The upstream's answer to the handshake, on a new connection: the first target that
    accepts a connection is asked. Raises ``UpstreamError`` when none answers."""
    failure: UpstreamError = UpstreamUnreachable("the upstream could not be reached", connect=True)
    for target in targets:
        try:
            conn = await pool.open(target, UpgradeConnection)
        except TimeoutError:
            failure = UpstreamTimeout(
                "the upstream did not accept a connection in time", connect=True
            )
            continue
        except OSError:
            failure = UpstreamUnreachable("the upstream could not be reached", connect=True)
            continue
        assert isinstance(conn, UpgradeConnection)
        conn.send_head(
            request_head("GET", target, path, headers, length=None, chunked=False), head_only=False
        )
        try:
            await conn.read_head(timeout)
        except TimeoutError as exc:
            conn.close()
            raise UpstreamTimeout("the upstream did not answer in time", connect=False) from exc
        except UpstreamBroken as exc:
            conn.close()
            raise UpstreamUnreachable("the upstream connection failed", connect=False) from exc
        if conn.status == 101 and not conn.upgraded:
            conn.close()
            raise UpstreamUnreachable(
                "the upstream switched protocols without Upgrade", connect=False
            )
        return target, conn
    raise failure


def answer_head(headers: list[tuple[bytes, bytes]], request_id: bytes) -> bytes:
    """The ``101`` for the client from the upstream's (already through the header policy)."""
    parts = [_SWITCHING]
    for name, value in headers:
        if name == b"sec-websocket-protocol" and value.strip()[:7].lower() == _BEARER:
            continue  # never the token back, whatever the upstream chose
        parts += (name, b": ", value, b"\r\n")
    parts += (_UPGRADED, request_id, b"\r\n\r\n")
    return b"".join(parts)
