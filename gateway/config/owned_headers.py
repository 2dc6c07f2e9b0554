"""The header names the gateway's rules are about, named once for the checks and the request path.

The rules live where they apply: ``proxy/headers.py`` decides what crosses the gateway in each
direction, and why; the configuration refuses identity headers and ``headers.set`` entries
that would take over a name the gateway owns (``OWNED_UPSTREAM``). The wire writes only
framing: the upstream client (``http/target.py``) ``Host``, ``Content-Length`` or
``Transfer-Encoding`` and a target's Basic ``Authorization``; the server (``http/cycle.py``) an
answer's ``Connection: close`` and chunking.
"""

from __future__ import annotations

__all__ = [
    "FORWARDING",
    "HOP_BY_HOP",
    "OWNED_UPSTREAM",
    "REROUTING",
    "SETTABLE_OWNED",
    "WIRE_OWNED",
]

# RFC 9110 §7.6.1: they describe one connection, not the message (plus the old spellings).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Make some frameworks serve another path or method than the one the gateway authorised.
REROUTING = frozenset(
    {
        b"x-original-url",
        b"x-rewrite-url",
        b"x-http-method-override",
        b"x-http-method",
        b"x-method-override",
    }
)
# Believed only from trusted proxies: from anyone else they are dropped (the gateway sets its own
# X-Forwarded-For, -Proto and -Host). Frameworks read the rest for the client address, the
# scheme, the port or a path prefix when they build URLs and log and rate-limit callers.
FORWARDING = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"x-real-ip",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-forwarded-scheme",
        b"x-forwarded-protocol",
        b"x-forwarded-ssl",
        b"x-forwarded-server",
        b"x-original-host",
        b"x-original-forwarded-for",
        b"x-url-scheme",
        b"front-end-https",
        b"true-client-ip",
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"cf-connecting-ip",
        b"fastly-client-ip",
    }
)
# Written by the upstream client from the URL and body, or by the gateway itself.
WIRE_OWNED = frozenset({b"host", b"expect", b"via", b"x-request-id", b"content-length"})
# What the gateway sets on the way upstream: an identity header may not reuse one of these
# names, and a route's headers.set may not set those that frame or route the request.
OWNED_UPSTREAM = frozenset(
    {
        "host",
        "authorization",
        "cookie",
        "content-length",
        "transfer-encoding",
        "connection",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
        "via",
    }
)
# ... except these: a static Authorization or Cookie for the upstream is a fair use of headers.set.
SETTABLE_OWNED = frozenset({"authorization", "cookie"})
