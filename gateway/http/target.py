"""Where a request goes upstream and the head it is sent with, both built without I/O.

A route's upstream URL is taken apart once, at load time (``Target.parse``); the request path
only joins prepared bytes (``request_head``), in one write.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["Target", "request_head"]


@dataclass(frozen=True, slots=True)
class Target:
    """One upstream URL, taken apart once at load time."""

    url: str
    host: str
    port: int
    tls: bool
    host_header: bytes
    base_path: bytes
    authorization: bytes | None
    key: tuple[str, int, bool]  # what the pool files connections under

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        host = parts.hostname or ""
        default = 443 if tls else 80
        port = parts.port or default
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port == default else f"{shown}:{port}"
        authorization = None
        if parts.username is not None:
            # user:password@ in the URL: HTTP Basic, as curl and every client read it.
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = b"Basic " + base64.b64encode(pair.encode())
        return cls(
            url=url,
            host=host,
            port=port,
            tls=tls,
            host_header=host_header.encode("idna" if not host.isascii() else "ascii"),
            base_path=parts.path.rstrip("/").encode(),
            authorization=authorization,
            key=(host, port, tls),
        )


def request_head(
    method: str,
    target: Target,
    path_and_query: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    *,
    length: int | None,
    chunked: bool,
) -> bytes:
    """The request line and headers, ready for one write.

    The framing is the gateway's: ``length`` (the client's declared body length) or
    ``chunked``; the header policy never passes a client's ``Content-Length`` or
    ``Transfer-Encoding`` on, so a ``Connection: content-length`` cannot strip the length and
    let the body be read upstream as a second, unchecked request."""
    parts = [
        method.encode("ascii"),
        b" ",
        target.base_path,
        path_and_query,
        b" HTTP/1.1\r\nhost: ",
        target.host_header,
        b"\r\n",
    ]
    for name, value in headers:
        if name == b"authorization" and target.authorization is not None:
            continue
        parts += (name, b": ", value, b"\r\n")
    if target.authorization is not None:
        parts += (b"authorization: ", target.authorization, b"\r\n")
    if chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    elif length is not None:
        parts += (b"content-length: ", b"%d" % length, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)
