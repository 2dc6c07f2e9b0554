"""The signed identity assertion: who is calling, for one route, as a JWT an upstream verifies.

For users: docs/forward-auth.md#the-identity-assertion.

Identity headers are only as trustworthy as the network: anything that can reach the upstream
without passing the gateway can send ``X-Auth-Subject: admin``. The assertion is signed with the
gateway's current key, published at ``/.well-known/jwks.json``, so an upstream can check it
instead of trusting the path the request took. Security reasoning, claim by claim:

- ``typ: gateway-identity+jwt``: an assertion is never an access token (the gateway requires
  ``at+jwt`` of its own tokens) and an access token is never an assertion, although both are
  signed with the same keys.
- ``aud`` is the route's name: an assertion one upstream received cannot be replayed by it to
  another route's upstream that checks its own name.
- ``exp`` is at most ``ttl`` after ``iat`` and never later than the access token's own ``exp``:
  the assertion does not outlive the authority it was made from.

Signing costs from about 50 µs (EdDSA) to more than a millisecond (RS256), more than the rest of
a proxied request, so an assertion is reused for the same token and route while more than half
of its life is left (an upstream never receives one about to expire), in a bounded cache like
the verified-token cache (``token_cache.py``): a full cache drops its oldest eighth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import islice
from typing import Any

import jwt

from gateway.auth.keys import KeyRing
from gateway.auth.token_cache import CachedToken

__all__ = ["ASSERTION_TYPE", "IdentityAsserter"]

ASSERTION_TYPE = "gateway-identity+jwt"
Identity = tuple[tuple[bytes, bytes], ...]
# The claims the assertion sets itself: an identity claim of the same name never replaces them.
_OWN_CLAIMS = frozenset({"iss", "aud", "sub", "scope", "sid", "iat", "exp", "nbf", "jti"})
# An assertion signed near the token's expiry has little life to halve: reused for a second
# anyway, so a token in its last moments (or in the leeway after them) costs one signature a
# second per route, not one per request.
_MIN_REUSE = 1.0


class IdentityAsserter:
    """Signs identity assertions with a key ring, reusing each for a token and route."""

    __slots__ = (
        "_batch",
        "_claims",
        "_clock",
        "_entries",
        "_header",
        "_issuer",
        "_ring",
        "_ttl",
        "maxsize",
    )

    def __init__(
        self,
        keyring: KeyRing,
        *,
        issuer: str,
        header: str,
        ttl: float,
        claims: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
        cache_size: int = 10000,
    ) -> None:
        if ttl < 1:
            raise ValueError("an assertion must live at least one second")
        self._ring = keyring
        self._issuer = issuer
        self._header = header.lower().encode("ascii")
        self._ttl = int(ttl)
        self._claims = tuple(c for c in dict.fromkeys(claims) if c not in _OWN_CLAIMS)
        self._clock = clock
        self._batch = max(1, cache_size // 8)
        self.maxsize = cache_size
        self._entries: dict[tuple[str, str], tuple[float, Identity]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def identity(self, token: str, route: str, admitted: CachedToken) -> Identity:
        """``admitted``'s identity headers followed by the assertion for ``route``."""
        now = self._clock()
        key = (token, route)
        entry = self._entries.get(key)
        if entry is not None and now < entry[0]:
            return entry[1]
        assertion, reuse_until = self.sign(route, admitted, now)
        identity = (*admitted.identity, (self._header, assertion))
        self._remember(key, (reuse_until, identity))
        return identity

    def sign(self, route: str, admitted: CachedToken, now: float) -> tuple[bytes, float]:
        """A new assertion, and until when it may be reused."""
        iat = int(now)
        exp = min(iat + self._ttl, int(admitted.exp))
        claims = admitted.claims
        payload: dict[str, Any] = {c: claims[c] for c in self._claims if c in claims}
        payload["iss"] = self._issuer
        payload["aud"] = route
        if admitted.sub is not None:
            payload["sub"] = admitted.sub
        payload["scope"] = " ".join(sorted(admitted.scopes))
        if admitted.sid is not None:
            payload["sid"] = admitted.sid
        payload["iat"] = iat
        payload["exp"] = exp
        ring = self._ring
        signed = jwt.encode(
            payload,
            ring.signing_key,
            algorithm=ring.signing_algorithm,
            headers={"kid": ring.signing_kid, "typ": ASSERTION_TYPE},
        )
        return signed.encode("ascii"), max(iat + (exp - iat) / 2, now + _MIN_REUSE)

    def _remember(self, key: tuple[str, str], entry: tuple[float, Identity]) -> None:
        if self.maxsize == 0:
            return
        entries = self._entries
        if len(entries) >= self.maxsize and key not in entries:
            for old in list(islice(entries, self._batch)):
                del entries[old]
        entries[key] = entry
