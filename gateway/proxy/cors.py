"""CORS (docs/configuration.md#cors): preflights answered by the gateway, without authentication.

A preflight carries no credentials by design, so it can never pass a protected route; the
gateway answers it itself. Only listed origins get ``Access-Control-Allow-Origin`` (never
``*``), credentials are allowed only when configured, and every answer that depends on the
``Origin`` says so with ``Vary: Origin`` so caches keep them apart.
"""

from __future__ import annotations

from gateway.config import CorsConfig

RawHeaders = list[tuple[bytes, bytes]]
_VARY = (b"vary", b"Origin")


class CorsPolicy:
    """The configured CORS rules, with every header value pre-encoded."""

    def __init__(self, config: CorsConfig | None) -> None:
        self.origins = (
            frozenset(o.encode() for o in config.allow_origins) if config else frozenset()
        )
        self._credentials = bool(config and config.allow_credentials)
        methods = ", ".join(config.allow_methods) if config else ""
        headers = ", ".join(config.allow_headers) if config else ""
        expose = ", ".join(config.expose_headers) if config else ""
        self._preflight: RawHeaders = [
            (b"access-control-allow-methods", methods.encode()),
            (b"access-control-allow-headers", headers.encode()),
            (b"access-control-max-age", str(config.max_age if config else 0).encode()),
        ]
        self._response: RawHeaders = []
        if expose:
            self._response.append((b"access-control-expose-headers", expose.encode()))
        if self._credentials:
            self._preflight.append((b"access-control-allow-credentials", b"true"))
            self._response.append((b"access-control-allow-credentials", b"true"))

    def allows(self, origin: bytes | None) -> bool:
        return origin is not None and origin in self.origins

    def preflight(self, origin: bytes | None) -> RawHeaders:
        """Headers answering a preflight from ``origin`` (only ``Vary`` when not allowed)."""
        if origin is None or origin not in self.origins:
            return [_VARY]
        return [(b"access-control-allow-origin", origin), *self._preflight, _VARY]

    def response(self, origin: bytes) -> RawHeaders:
        """Headers added to an actual response for an allowed ``origin``."""
        return [(b"access-control-allow-origin", origin), *self._response, _VARY]


def without_cors(headers: RawHeaders) -> RawHeaders:
    """An upstream's own ``Access-Control-*`` headers, removed: the gateway owns CORS."""
    return [(n, v) for n, v in headers if not n.startswith(b"access-control-")]
