"""What crosses the gateway, in each direction: the rules for every header but the framing.

The names these rules are about are kept in ``config/owned_headers.py``; the wire writes only
framing (``Host``, the body's length or chunking, ``Connection``), as that module says.

Security reasoning, once:

- Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message; forwarding
  ``Connection``, ``Transfer-Encoding`` or ``Upgrade`` would let a client steer how the
  gateway's pooled upstream connection is framed. Headers named by ``Connection`` go too.
- Identity headers are the upstream's only word on who is calling, so a client must never be
  able to send one. They are removed in every spelling (any letter case, ``_`` for ``-``, sent
  twice) on every route, public ones included, before the gateway adds its own from claims.
- ``Authorization`` and the gateway's cookies are credentials for the gateway, not for the
  upstream: an upstream that logs headers would otherwise leak live tokens.
- ``X-Original-URL``, ``X-Rewrite-URL`` and the method-override family make some frameworks
  serve another path or method than the one the gateway authorised, so they never pass.
- ``X-Forwarded-*``, ``Forwarded`` and ``X-Real-IP`` are believed only from trusted proxies;
  from anyone else they are replaced by what the gateway itself saw.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from gateway.config import Config, IdentityAssertionConfig, IpNetwork, Route
from gateway.config.owned_headers import FORWARDING, HOP_BY_HOP, REROUTING, WIRE_OWNED

RawHeaders = list[tuple[bytes, bytes]]

_CONNECTION_ONLY = frozenset({b"keep-alive", b"close"})


class HeaderPolicy:
    """Per-configuration header rules, compiled once; methods are the per-request work."""

    def __init__(self, config: Config) -> None:
        # The assertion's header (and the default name, when none is configured) is removed
        # from clients like an identity header, whether or not a route sends one: an upstream
        # checking it must only ever see the gateway's.
        assertion = config.identity_assertion or IdentityAssertionConfig()
        self._identity_names = frozenset(
            (*(name.encode() for name, _ in config.identity_headers), assertion.header.encode())
        )
        self._gateway_cookies = frozenset(
            name.encode()
            for name in (
                config.tokens.cookie.name,
                *((config.tokens.access_cookie.name,) if config.tokens.access_cookie else ()),
            )
        )
        self._trusted = config.server.trusted_proxies
        self._always_drop = HOP_BY_HOP | REROUTING | WIRE_OWNED | self._identity_names
        # Many stacks (CGI, WSGI, PHP) read ``X_Forwarded_For`` as ``X-Forwarded-For``: a client
        # header whose ``_`` spelling names a header the gateway controls never passes.
        self._protected_spellings = self._always_drop | FORWARDING | {b"authorization", b"cookie"}
        self._set = {
            r.name: tuple((n.encode(), v.encode("latin-1")) for n, v in r.headers.set)
            for r in config.routes
        }
        # A route's `set` replaces the client's header of that name, and `remove` takes it out
        # in its `_` spelling too (X_Debug reads as X-Debug to CGI, WSGI and PHP stacks).
        self._remove = {
            r.name: frozenset(
                n.encode().lower() for n in (*r.headers.remove, *(n for n, _ in r.headers.set))
            )
            for r in config.routes
        }

    def is_trusted(self, peer: str | None) -> bool:
        """Whether ``peer`` is a proxy whose forwarding headers are believed."""
        if not self._trusted or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return _in_networks(address, self._trusted)

    def client_address(self, peer: str, forwarded_for: list[bytes]) -> str:
        """The client's address: the first untrusted hop of ``X-Forwarded-For``, read right
        to left, when the peer is a trusted proxy; the peer itself otherwise."""
        if not self.is_trusted(peer):
            return peer
        hops = [h.strip().decode("latin-1") for v in forwarded_for for h in v.split(b",")]
        for hop in reversed(hops):
            if hop and not self.is_trusted(hop):
                return hop
        return hops[0] if hops and hops[0] else peer

    def upstream_request(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        route: Route,
        *,
        peer: str | None,
        scheme: str,
        request_id: bytes,
        identity: Iterable[tuple[bytes, bytes]],
    ) -> RawHeaders:
        """The headers to send upstream, built in one pass over the client's."""
        trusted = self.is_trusted(peer)
        drop = self._always_drop
        remove = self._remove[route.name]
        connection_named: set[bytes] | None = None
        out: RawHeaders = []
        forwarded_for: list[bytes] = []
        proto: bytes | None = None
        host: bytes | None = None
        forwarded_host: bytes | None = None
        for name, value in headers:
            if name == b"connection":
                connection_named = _connection_options(value, connection_named)
                continue
            if name in drop:
                if name == b"host":
                    host = value
                continue
            # bytes.find, not `in`: on Python 3.11 `bytes in bytes` first tries the needle as an
            # int and builds a TypeError message it throws away (~2,000 instructions a test).
            if name.find(b"_") >= 0 and (
                (dashed := name.replace(b"_", b"-")) in self._protected_spellings
                or dashed in remove
            ):
                continue
            if name in FORWARDING:
                if trusted:
                    if name == b"x-forwarded-for":
                        forwarded_for.append(value)
                    elif name == b"x-forwarded-proto":
                        proto = value
                    elif name == b"x-forwarded-host":
                        forwarded_host = value
                    else:
                        out.append((name, value))
                continue
            if name == b"authorization" and not route.forward_authorization:
                continue
            if name == b"cookie":
                value = self._without_gateway_cookies(value)
                if not value:
                    continue
            if name in remove:
                continue
            out.append((name, value))
        if connection_named:
            out = [(n, v) for n, v in out if n not in connection_named]
        client = (peer or "").encode()
        forwarded_for.append(client)
        out.append((b"x-forwarded-for", b", ".join(forwarded_for)))
        out.append((b"x-forwarded-proto", proto or scheme.encode()))
        if forwarded_host or host:
            out.append((b"x-forwarded-host", forwarded_host or host or b""))
        out.append((b"via", b"1.1 gateway"))
        out.append((b"x-request-id", request_id))
        out.extend(self._set[route.name])
        # Rendered once per verified token (the verifier refused control characters).
        out.extend(identity)
        return out

    def _without_gateway_cookies(self, value: bytes) -> bytes:
        if not any(cookie in value for cookie in self._gateway_cookies):
            return value
        kept = [
            part
            for part in (p.strip() for p in value.split(b";"))
            if part and _cookie_name(part) not in self._gateway_cookies
        ]
        return b"; ".join(kept)

    def downstream_response(self, headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
        """The upstream's response headers as the client receives them."""
        out: RawHeaders = []
        connection_named: set[bytes] | None = None
        cookies = self._gateway_cookies
        for raw_name, value in headers:
            name = raw_name.lower()
            if name in HOP_BY_HOP:
                if name == b"connection":
                    connection_named = _connection_options(value, connection_named)
                continue
            if name == b"set-cookie" and _cookie_name(value) in cookies:
                continue
            if name == b"x-request-id":
                continue
            out.append((name, value))
        if connection_named:
            out = [(n, v) for n, v in out if n not in connection_named]
        return out


def _connection_options(value: bytes, named: set[bytes] | None) -> set[bytes] | None:
    """Add the header names a ``Connection`` value lists (RFC 9110 §7.6.1) to ``named``.

    ``keep-alive`` and ``close``, by far the commonest values, name nothing that is not
    already dropped, so they leave ``named`` as it is and the headers are not walked again."""
    for part in value.split(b","):
        option = part.strip().lower()
        if option and option not in _CONNECTION_ONLY:
            if named is None:
                named = set()
            named.add(option)
    return named


def _cookie_name(pair: bytes) -> bytes:
    """The name of ``name=value`` as browsers and our reader see it (RFC 6265 §5.2: trimmed)."""
    return pair.partition(b"=")[0].strip(b" \t")


def _in_networks(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[IpNetwork, ...]
) -> bool:
    return any(address.version == net.version and address in net for net in networks)
