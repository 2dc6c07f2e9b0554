"""The client's address as every rule above the wire reads it.

An IPv4 client of a dual-stack (``::``) listener reaches the gateway named ``::ffff:192.0.2.1``;
every rule that reads the client address (``trusted_proxies`` CIDRs, the login throttle's
per-address counters, the rate limit, the access log) is written for ``192.0.2.1``. Left mapped,
a trusted IPv4 proxy would not be believed, and the throttle, which counts IPv6 clients per /64,
would count every IPv4 client of the gateway as one.

And a client that sends a request and resets the connection before ``connection_made`` runs:
uvloop accepts without keeping the address ``accept`` returned and asks ``getpeername`` when
asked, which Linux refuses (ENOTCONN) for a socket already reset, although the request is still
there to be read and answered; the access log said ``"client": ""``. The kernel still holds the
address, and ``SO_PEERNAME`` (Linux) reads it without that check: the fallback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

__all__ = ["remote_address", "unmapped"]


def unmapped(address: tuple[str, int] | None) -> tuple[str, int] | None:
    """``(host, port)`` with an IPv4-mapped IPv6 host written as the IPv4 address it is."""
    if address is None or not address[0].startswith("::ffff:"):
        return address
    try:
        mapped = ipaddress.IPv6Address(address[0]).ipv4_mapped
    except ValueError:
        return address
    return (str(mapped), address[1]) if mapped else address


def remote_address(transport: asyncio.Transport) -> tuple[str, int] | None:
    """The peer of ``transport``, read when the connection is made, a reset one's too."""
    return unmapped(_peer(transport))


_SO_PEERNAME = getattr(socket, "SO_PEERNAME", 28)  # Linux's value; Python does not name it
_SOCKADDR_SIZE = {socket.AF_INET: 16, socket.AF_INET6: 28}


def _peer(transport: asyncio.Transport) -> tuple[str, int] | None:
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
