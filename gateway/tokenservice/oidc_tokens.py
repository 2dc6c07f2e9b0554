"""Validating what an OpenID provider signs: the ID token, and the back-channel logout token.

What is checked, for users: docs/behaviour.md#single-sign-on.

Security reasoning:

- The algorithm is taken from the token's header only after it is checked against both the
  algorithms the provider advertises in discovery and the asymmetric ones the gateway accepts
  (``VERIFY_ALGORITHMS``): never ``none``, never HMAC, which a JWKS's public key would verify
  for anyone who fetched it. The key comes from the provider's JWKS only (``JwksSource``); the
  token's ``jku``, ``x5u`` or ``jwk`` headers are never followed.
- ``aud`` must contain the gateway's ``client_id``; with several audiences ``azp`` must name the
  gateway (OIDC Core 3.1.3.7), so a token minted for another client of the same provider, even
  one that lists the gateway among its audiences, does not sign anyone in.
- ``nonce`` binds the ID token to the browser's flow (a token replayed from another flow fails);
  a logout token must have none, so an ID token can never be posted as a logout token.
- PyJWT checks the signature, ``iss``, ``aud``, ``exp`` and ``iat`` (with the gateway's leeway);
  the rest is checked here. Failures leave as ``OidcTokenError`` with a reason that names no
  token content but the claim at fault.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from gateway.auth.jwks import JwksSource
from gateway.auth.keys import VERIFY_ALGORITHMS

__all__ = ["BACKCHANNEL_EVENT", "LogoutToken", "OidcTokenError", "TokenRules", "validate"]

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_TOKEN_BYTES = 64 * 1024
# An ID token is read at once after it is issued; an old one is a replay. A logout token too.
MAX_AGE = 600.0


class OidcTokenError(Exception):
    """A provider's token that is not acceptable; the message says why (no token content)."""


@dataclass(frozen=True, slots=True)
class TokenRules:
    """What a provider's tokens must satisfy: its issuer, keys, algorithms and our client id."""

    issuer: str
    client_id: str
    algorithms: frozenset[str]
    keys: JwksSource
    leeway: float


@dataclass(frozen=True, slots=True)
class LogoutToken:
    """The session a valid back-channel logout token ends: ``sid`` and/or ``sub``."""

    sid: str | None
    sub: str | None


async def validate(
    token: str,
    rules: TokenRules,
    *,
    nonce: str | None,
    logout: bool = False,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """The claims of ``token`` once every check passed; ``OidcTokenError`` otherwise.

    ``nonce`` is the flow's nonce for an ID token; a logout token (``logout``) has none."""
    if len(token) > MAX_TOKEN_BYTES:
        raise OidcTokenError("the token is too large")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise OidcTokenError("the token is not a signed JWT") from None
    alg = header.get("alg")
    allowed = rules.algorithms & VERIFY_ALGORITHMS
    if not isinstance(alg, str) or alg not in allowed:
        raise OidcTokenError(f"algorithm {alg!r} is not one the provider advertises")
    kid = header.get("kid")
    key = await rules.keys.get(kid if isinstance(kid, str) else None)
    if key is None:
        raise OidcTokenError("no key of the provider's JWKS matches the token's kid")
    if alg not in key.algorithms:
        raise OidcTokenError(f"the provider's key does not sign with {alg}")
    required = ["iss", "aud", "iat"] + ([] if logout else ["exp", "sub"])
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=rules.client_id,
            issuer=rules.issuer,
            leeway=rules.leeway,
            options={"require": required},
        )
    except jwt.ExpiredSignatureError:
        raise OidcTokenError("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise OidcTokenError("the token's aud does not contain the gateway's client_id") from None
    except jwt.InvalidIssuerError:
        raise OidcTokenError("the token's iss is not the provider's issuer") from None
    except jwt.ImmatureSignatureError:
        raise OidcTokenError("the token was issued in the future") from None
    except jwt.MissingRequiredClaimError as exc:
        raise OidcTokenError(f"the token lacks the {exc.claim} claim") from None
    except jwt.PyJWTError:
        raise OidcTokenError("the token's signature or claims are invalid") from None
    _check_azp(claims, rules.client_id)
    iat = claims["iat"]
    if not isinstance(iat, int | float) or clock() - iat > MAX_AGE + rules.leeway:
        raise OidcTokenError("the token was issued too long ago")
    if logout:
        _check_logout(claims)
    else:
        got = claims.get("nonce")
        # Bytes: compare_digest raises TypeError on a str that is not ASCII.
        if (
            nonce is None
            or not isinstance(got, str)
            or not hmac.compare_digest(got.encode(), nonce.encode())
        ):
            raise OidcTokenError("the token's nonce is not the sign-in's")
    return claims


def logout_session(claims: Mapping[str, Any]) -> LogoutToken:
    """The ``sid`` and ``sub`` a validated logout token names."""
    sid, sub = claims.get("sid"), claims.get("sub")
    return LogoutToken(sid if isinstance(sid, str) else None, sub if isinstance(sub, str) else None)


def _check_azp(claims: Mapping[str, Any], client_id: str) -> None:
    aud, azp = claims.get("aud"), claims.get("azp")
    several = isinstance(aud, list) and len(aud) > 1
    if (several or azp is not None) and azp != client_id:
        raise OidcTokenError("the token's azp is not the gateway's client_id")


def _check_logout(claims: Mapping[str, Any]) -> None:
    """OIDC Back-Channel Logout 1.0, 2.6: events, no nonce, a sid or a sub."""
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise OidcTokenError("the logout token lacks the back-channel logout event")
    if "nonce" in claims:
        raise OidcTokenError("a logout token must not carry a nonce")
    sid, sub = claims.get("sid"), claims.get("sub")
    if not (isinstance(sid, str) and sid) and not (isinstance(sub, str) and sub):
        raise OidcTokenError("the logout token names neither a sid nor a sub")
