"""Per-route access decisions: which token a route needs, and the exact refusal.

The answers, for users: docs/behaviour.md#answers-on-a-route.

Every refusal is a ``Denial``; ``denial_for`` is the one place a failure becomes a status, a
``WWW-Authenticate`` header (RFC 6750 §3) and a JSON error code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.auth.errors import TokenError
from gateway.auth.token_cache import CachedToken
from gateway.config import Route

REALM = b'Bearer realm="gateway"'


@dataclass(frozen=True, slots=True)
class Denial:
    """A refused request: the answer and the label recorded in logs and metrics."""

    status: int
    code: str
    description: str
    reason: str
    www_authenticate: bytes | None = None

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.www_authenticate is None:
            return []
        return [(b"www-authenticate", self.www_authenticate)]


NO_TOKEN = Denial(401, "unauthorized", "This route requires an access token", "missing", REALM)


def _quoted(text: str) -> bytes:
    """An RFC 9110 quoted-string body: the description never holds a quote or a control."""
    cleaned = "".join(c for c in text if c >= " " and c not in '"\\')
    return cleaned.encode("ascii", "replace")


def invalid_token(error: TokenError) -> Denial:
    """401 ``invalid_token`` for a token that failed verification."""
    header = (
        REALM + b', error="invalid_token", error_description="' + _quoted(error.description) + b'"'
    )
    return Denial(401, "invalid_token", error.description, error.failure.label, header)


@dataclass(frozen=True, slots=True)
class RouteAccess:
    """What one route demands of a token, compiled once per configuration."""

    route: Route
    scopes: frozenset[str]
    claims: tuple[tuple[str, Any], ...]
    insufficient_scope: Denial
    forbidden: Denial

    @classmethod
    def compile(cls, route: Route) -> RouteAccess:
        scope_text = " ".join(route.scopes)
        header = (
            REALM
            + b', error="insufficient_scope", error_description="A required scope is missing"'
            + b', scope="'
            + _quoted(scope_text)
            + b'"'
        )
        return cls(
            route=route,
            scopes=frozenset(route.scopes),
            claims=route.claims,
            insufficient_scope=Denial(
                403,
                "insufficient_scope",
                f"This route requires the scopes: {scope_text}",
                "insufficient_scope",
                header,
            ),
            forbidden=Denial(
                403, "forbidden", "The token's claims do not allow this route", "claims"
            ),
        )

    def check(self, token: CachedToken) -> Denial | None:
        """``None`` when a verified token satisfies the route, else the 403 to send."""
        if self.scopes and not self.scopes <= token.scopes:
            return self.insufficient_scope
        for name, expected in self.claims:
            if token.claims.get(name) != expected:
                return self.forbidden
        return None
