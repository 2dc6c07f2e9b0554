"""Login sessions over the refresh-token store, with no HTTP in sight.

The rules, for users: docs/behaviour.md#refresh-tokens-and-cookies.

A session is a refresh-token family: ``login`` starts one and mints the first access token,
``refresh`` presents a refresh token to the store's atomic ``rotate`` and mints a new access
token for the family's ``sub``, scope and claims, ``logout`` revokes the family.

Security reasoning:

- A refresh token is 256 bits from ``secrets`` and only its SHA-256 hash reaches the store; the
  token itself exists in the cookie and in this process's memory for one request.
- A value that cannot be one of our tokens (wrong length or alphabet) is refused before the
  store is asked, so garbage cookies cost nothing.
- ``REUSED`` means a rotated token came back: it may have been stolen, and the store has already
  revoked the whole family. The caller adds the ``sid`` to the local revocation set at once, so
  the family's access tokens stop here without waiting for the next poll.
- The access token's ``sid`` is the family id, which is what logout revokes everywhere.
- A rotation's new token is derived from the one presented (HMAC-SHA256 with a secret derived
  from the signing keys, ``KeyRing.derive_secret``), not drawn at random. So when the same
  token comes back within ``refresh_reuse_grace`` (a second tab, or a client whose answer was
  lost on its way), the answer can carry the very token that rotation issued: every tab ends
  up holding one token, and a lost answer costs no session. Nothing is stored in the clear,
  and without the secret a successor cannot be told from random. The cost: a thief presenting
  a just-rotated token inside the grace window gets the live token too, as the victim's own
  retry would; the next rotation by either side then exposes the other (reuse).

Time is a parameter (``clock``), so tests of idle and absolute lifetimes need no sleep.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from gateway.auth.issuer import TokenIssuer
from gateway.config import TokensConfig
from gateway.store import RefreshStore, RotationOutcome, hash_token
from gateway.tokenservice.users import Identity

__all__ = ["Grant", "InvalidGrant", "Refused", "SessionService"]

REFRESH_TOKEN_BYTES = 32  # 256 bits
_REFRESH_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


class Refused(enum.Enum):
    """Why a refresh token was refused (all answered 401 ``invalid_grant``)."""

    MISSING = "missing"
    INVALID = "invalid"  # unknown, expired, idle or revoked
    REUSED = "reused"  # an already-rotated token: the family is now revoked


class InvalidGrant(Exception):
    """A refresh token that gives nothing; ``sid`` is set when a family was just revoked."""

    def __init__(self, reason: Refused, sid: str | None = None, sub: str | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.sid = sid
        self.sub = sub


@dataclass(frozen=True, slots=True)
class Grant:
    """What a login or refresh gives: an access token and the refresh token to set."""

    access_token: str
    expires_in: int
    sid: str
    sub: str
    refresh_token: str | None = None
    refresh_max_age: int = 0  # seconds the family has left: the cookie's Max-Age
    grace: bool = False  # the answer to a retry within the grace window (same refresh token)


class SessionService:
    """Starts, rotates and ends sessions; the store does every decision atomically."""

    def __init__(
        self,
        store: RefreshStore,
        issuer: TokenIssuer,
        tokens: TokensConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.issuer = issuer
        self._absolute_ttl = tokens.refresh_ttl
        self._idle_ttl = min(tokens.refresh_idle_ttl, tokens.refresh_ttl)
        self._grace = tokens.refresh_reuse_grace
        self._clock = clock
        self._rotation_secret = issuer.keyring.derive_secret(b"gateway refresh-token rotation")

    async def login(self, identity: Identity) -> Grant:
        """Start a family for ``identity``; raises ``StoreError`` when the store fails."""
        now = self._clock()
        sid = secrets.token_urlsafe(16)
        refresh_token = new_refresh_token()
        await self.store.start_session(
            sid=sid,
            sub=identity.sub,
            token_hash=hash_token(refresh_token),
            data=_session_data(identity),
            now=now,
            absolute_ttl=self._absolute_ttl,
            idle_ttl=self._idle_ttl,
        )
        access_token, expires_in = self._mint(identity, sid)
        return Grant(
            access_token,
            expires_in,
            sid,
            identity.sub,
            refresh_token,
            max(1, int(self._absolute_ttl)),
        )

    async def refresh(self, refresh_token: str | None) -> Grant:
        """Exchange ``refresh_token``; ``InvalidGrant`` when it gives nothing."""
        if not refresh_token:
            raise InvalidGrant(Refused.MISSING)
        if not _REFRESH_TOKEN.match(refresh_token):
            raise InvalidGrant(Refused.INVALID)
        now = self._clock()
        new_token = self.successor(refresh_token)
        rotation = await self.store.rotate(
            token_hash=hash_token(refresh_token),
            new_token_hash=hash_token(new_token),
            now=now,
            idle_ttl=self._idle_ttl,
            grace=self._grace,
        )
        outcome = rotation.outcome
        if outcome is RotationOutcome.INVALID or rotation.sid is None or rotation.sub is None:
            raise InvalidGrant(Refused.INVALID)
        if outcome is RotationOutcome.REUSED:
            raise InvalidGrant(Refused.REUSED, rotation.sid, rotation.sub)
        identity = _identity(rotation.sub, rotation.data)
        access_token, expires_in = self._mint(identity, rotation.sid)
        remaining = (rotation.expires_at or now) - now
        # In grace the presented token is the family's previous one, so its successor is the
        # family's current token: the one the rotation that just happened issued.
        return Grant(
            access_token,
            expires_in,
            rotation.sid,
            rotation.sub,
            new_token,
            max(1, int(remaining)),
            grace=outcome is RotationOutcome.GRACE,
        )

    def successor(self, refresh_token: str) -> str:
        """The token a rotation of ``refresh_token`` issues: the same on every replica."""
        mac = hmac.new(self._rotation_secret, refresh_token.encode("ascii"), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    async def logout(self, refresh_token: str | None) -> str | None:
        """Revoke the family of ``refresh_token``; its sid, or None when there was none."""
        if not refresh_token or not _REFRESH_TOKEN.match(refresh_token):
            return None
        return await self.store.revoke_token(
            token_hash=hash_token(refresh_token), now=self._clock()
        )

    async def revoke_subject(self, sub: str) -> list[str]:
        """Revoke every live family of ``sub`` ("log out everywhere"); the sids revoked."""
        return await self.store.revoke_subject(sub=sub, now=self._clock())

    def _mint(self, identity: Identity, sid: str) -> tuple[str, int]:
        return self.issuer.mint(identity.sub, scope=identity.scope, sid=sid, claims=identity.claims)


def new_refresh_token() -> str:
    """A fresh opaque refresh token: 256 random bits, base64url (43 characters)."""
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def _session_data(identity: Identity) -> str:
    return json.dumps({"scope": identity.scope, "claims": dict(identity.claims)})


def _identity(sub: str, data: str | None) -> Identity:
    try:
        stored = json.loads(data or "{}")
    except ValueError:
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    scope = stored.get("scope")
    claims = stored.get("claims")
    if not isinstance(claims, dict):
        claims = {}
    return Identity(sub, scope if isinstance(scope, str) else "", MappingProxyType(claims))
