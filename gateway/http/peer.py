"""The client's address of a connection, even one the client has already reset.

uvloop accepts connections without keeping the address ``accept`` returns, and its transport
asks the socket (``getpeername``) when asked. A client that sends a request and resets the
connection before the protocol's ``connection_made`` runs leaves a socket in the CLOSE state,
for which Linux's ``getpeername`` answers ENOTCONN although the request is still there to be
read and answered: the access log then said ``"client": ""``. The kernel still holds the
address; ``SO_PEERNAME`` (Linux) reads it without the state check, so it is the fallback.
"""

from __future__ import annotations

import asyncio
import socket
import struct

__all__ = ["peer_address"]

_SO_PEERNAME = getattr(socket, "SO_PEERNAME", 28)  # Linux's value; Python does not name it
_SOCKADDR_SIZE = {socket.AF_INET: 16, socket.AF_INET6: 28}


def peer_address(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    """``(host, port)`` of the other end of ``transport``, or None when it is not an IP peer."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        info = transport.get_extra_info("peername")
        return (str(info[0]), int(info[1])) if isinstance(info, (tuple, list)) else None
    try:
        info = sock.getpeername()
    except OSError:
        return _reset_peer(sock)
    return (str(info[0]), int(info[1])) if isinstance(info, tuple) else None


def _reset_peer(sock: socket.socket) -> tuple[str, int] | None:
    """The peer of a socket already reset (``getpeername`` refuses CLOSE), or None."""
    size = _SOCKADDR_SIZE.get(sock.family)
    if size is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERNAME, size)
    except OSError:  # not Linux, or never connected
        return None
    (port,) = struct.unpack("!H", raw[2:4])
    if sock.family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
