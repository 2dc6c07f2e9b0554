"""The client's address as every rule above the wire reads it.

An IPv4 client of a dual-stack (``::``) listener reaches the gateway named ``::ffff:192.0.2.1``;
every rule that reads the client address (``trusted_proxies`` CIDRs, the login throttle's
per-address counters, the rate limit, the access log) is written for ``192.0.2.1``. Left mapped,
a trusted IPv4 proxy would not be believed, and the throttle, which counts IPv6 clients per /64,
would count every IPv4 client of the gateway as one.
"""

from __future__ import annotations

import asyncio
import ipaddress

from uvicorn.protocols.utils import get_remote_addr

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
    """The peer of ``transport``, read when the connection is made (it is gone after a reset)."""
    return unmapped(get_remote_addr(transport))
