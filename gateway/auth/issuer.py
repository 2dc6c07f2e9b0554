"""Minting the gateway's own access tokens (RFC 9068 ``at+jwt``), signed with the newest key.

The registered claims (``iss, sub, aud, exp, iat, nbf, jti, sid, scope``) are always the
issuer's: a user claim of the same name (from ``users.yaml`` or a ``verify_url`` answer) is
dropped, so no account data can extend a token's life, change its audience or its session.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from gateway.auth.keys import KeyRing

__all__ = ["REGISTERED_CLAIMS", "TokenIssuer"]

REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "scope"})


class TokenIssuer:
    """Signs access tokens for this gateway; ``keyring`` may be swapped on reload."""

    def __init__(
        self,
        keyring: KeyRing,
        *,
        issuer: str,
        audience: str,
        access_ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if access_ttl < 1:
            raise ValueError("access_ttl must be at least one second")
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self._clock = clock

    def mint(
        self,
        sub: str,
        *,
        scope: str,
        sid: str | None = None,
        claims: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> tuple[str, int]:
        """A signed access token for ``sub`` and its lifetime in seconds (``expires_in``)."""
        if not sub:
            raise ValueError("a token needs a subject")
        lifetime = int(self.access_ttl if ttl is None else ttl)
        if lifetime < 1:
            raise ValueError("a token must live at least one second")
        keyring = self.keyring  # one read: the ring may be swapped while we sign
        now = int(self._clock())
        payload: dict[str, Any] = {
            name: value for name, value in (claims or {}).items() if name not in REGISTERED_CLAIMS
        }
        payload.update(
            iss=self.issuer,
            sub=sub,
            aud=self.audience,
            iat=now,
            exp=now + lifetime,
            jti=secrets.token_urlsafe(16),
            scope=scope,
        )
        if sid is not None:
            payload["sid"] = sid
        token = jwt.encode(
            payload,
            keyring.signing_key,
            algorithm=keyring.signing_algorithm,
            headers={"kid": keyring.signing_kid, "typ": "at+jwt"},
        )
        return token, lifetime
