"""Access-token verification: one ``Verifier.verify`` that returns claims or a reason.

What is checked, for users: docs/behaviour.md#access-tokens.

Security reasoning, in the order the checks run:

- The token is parsed by this module, defensively: anything but three base64url segments holding
  a JSON object header and payload (no NaN or Infinity), within ``MAX_TOKEN_LENGTH``, is
  ``malformed``. No library exception escapes: a garbage token is a 401, never a 500.
- A ``crit`` header is refused: it names extensions the sender requires us to understand, and we
  understand none. ``jku``, ``x5u``, ``jwk`` and ``x5c`` are never read: the key comes only from
  our own sources, otherwise a token could carry the key that "verifies" it.
- ``iss`` (read before the signature is checked, exact string) only selects which issuer's
  policy and key set apply; nothing from the token is trusted until the signature holds.
- The algorithm comes from configuration: ``alg`` must be one the issuer is configured for and
  one the selected key fits (the key's type decides, see ``keys.compatible_algorithms``). Only
  asymmetric algorithms can be configured, so ``none`` and HS256-signed-with-the-public-key are
  refused whatever the token says.
- ``exp`` is required; ``exp``, ``nbf`` and ``iat`` must be numbers and are checked with the
  leeway; ``exp - iat`` (or ``exp - now``) may not exceed the issuer's ``max_lifetime``, so a
  stolen long-lived token from a lax IdP is not accepted.
- A claim that becomes an identity header must not hold a control character: it would split or
  smuggle headers upstream.
- A token of a revoked session (``sid``) is refused, on cache hits too.
"""

from __future__ import annotations

import binascii
import json
import math
import re
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from jwt.algorithms import Algorithm, get_default_algorithms

from gateway.auth.errors import Failure, TokenError
from gateway.auth.keys import SIGNING_ALGORITHMS, VERIFY_ALGORITHMS, VerificationKey
from gateway.auth.token_cache import CachedToken, TokenCache

__all__ = [
    "MAX_TOKEN_LENGTH",
    "IssuerPolicy",
    "KeySource",
    "Verifier",
    "scopes_of",
]

MAX_TOKEN_LENGTH = 16 * 1024
_ALGORITHMS: dict[str, Algorithm] = {
    name: algorithm
    for name, algorithm in get_default_algorithms().items()
    if name in VERIFY_ALGORITHMS
}
# The signature may be empty so that an unsigned (``alg: none``) token is refused by the algorithm
# rule, and labelled as such, rather than as merely malformed.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# C0 and C1 controls, DEL, and the Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ABSENT: Any = object()


class KeySource(Protocol):
    """Where an issuer's verification keys come from (``KeyRing``, ``JwksSource``)."""

    async def get(self, kid: str | None) -> VerificationKey | None:
        """The key named ``kid``; with no kid, the source's only key (None if it has several)."""
        ...


@dataclass(frozen=True)
class IssuerPolicy:
    """What a token of one issuer must satisfy, and where its keys come from."""

    issuer: str
    audience: str
    algorithms: frozenset[str]
    max_lifetime: float
    required_typ: str | None
    keys: KeySource
    required_claims: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        refused = self.algorithms - VERIFY_ALGORITHMS
        if refused:
            raise ValueError(f"algorithms not accepted: {', '.join(sorted(refused))}")
        if self.required_typ is not None:
            object.__setattr__(self, "required_typ", _normalise_typ(self.required_typ))

    @classmethod
    def own(
        cls, keys: KeySource, *, issuer: str, audience: str, max_lifetime: float = 86400.0
    ) -> IssuerPolicy:
        """The policy for the gateway's own tokens: ``typ: at+jwt`` (RFC 9068), sub/iat/jti."""
        return cls(
            issuer=issuer,
            audience=audience,
            algorithms=SIGNING_ALGORITHMS,
            max_lifetime=max_lifetime,
            required_typ="at+jwt",
            keys=keys,
            required_claims=frozenset({"sub", "iat", "jti"}),
        )


class Verifier:
    """Verifies access tokens against per-issuer policies, with a bounded verified-token cache."""

    def __init__(
        self,
        policies: Mapping[str, IssuerPolicy],
        *,
        leeway: float,
        clock: Callable[[], float] = time.time,
        header_claims: tuple[str, ...] = (),
        identity_headers: tuple[tuple[bytes, str], ...] = (),
        cache_size: int = 10000,
        revoked: Container[str] | None = None,
    ) -> None:
        for issuer, policy in policies.items():
            if issuer != policy.issuer:
                raise ValueError(f"policy for {policy.issuer!r} filed under {issuer!r}")
        self._policies = dict(policies)
        self._leeway = leeway
        self._clock = clock
        self._identity_headers = identity_headers
        self._header_claims = tuple(
            dict.fromkeys((*header_claims, *(claim for _, claim in identity_headers)))
        )
        self._revoked = revoked
        self.cache = TokenCache(cache_size)

    async def verify(self, token: str) -> Mapping[str, Any]:
        """The token's claims (read-only), or ``TokenError`` with the reason."""
        return (await self.admit(token)).claims

    async def admit(self, token: str) -> CachedToken:
        """The verified token with its scopes, subject and identity headers, or ``TokenError``."""
        now = self._clock()
        entry = self.cache.get(token, now)
        if entry is None:
            entry = await self._verify(token, now)
            if now < entry.exp:  # within the leeway after exp: verified, but not worth keeping
                self.cache.put(token, entry)
        if entry.sid is not None and self._revoked is not None and entry.sid in self._revoked:
            raise TokenError(Failure.REVOKED)
        return entry

    async def _verify(self, token: str, now: float) -> CachedToken:
        header, payload, signing_input, signature = _parse(token)
        if "crit" in header:
            raise TokenError(Failure.CRIT_HEADER)
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or not (kid is None or isinstance(kid, str)):
            raise TokenError(Failure.MALFORMED)

        issuer = payload.get("iss")
        if issuer is None:
            raise TokenError(Failure.MISSING_CLAIM, "iss")
        if not isinstance(issuer, str):
            raise TokenError(Failure.BAD_CLAIM_TYPE, "iss")
        policy = self._policies.get(issuer)
        if policy is None:
            raise TokenError(Failure.UNKNOWN_ISSUER)
        if alg not in policy.algorithms:
            raise TokenError(Failure.ALGORITHM_NOT_ALLOWED)
        if policy.required_typ is not None:
            typ = header.get("typ")
            if not isinstance(typ, str) or _normalise_typ(typ) != policy.required_typ:
                raise TokenError(Failure.BAD_TYPE)

        key = await policy.keys.get(kid)
        if key is None:
            raise TokenError(Failure.UNKNOWN_KEY)
        if alg not in key.algorithms:
            raise TokenError(Failure.ALGORITHM_NOT_ALLOWED)
        try:
            valid = _ALGORITHMS[alg].verify(signing_input, key.key, signature)
        except Exception:  # a key/signature shape the library chokes on is just a bad signature
            valid = False
        if not valid:
            raise TokenError(Failure.BAD_SIGNATURE)

        exp = _check_claims(payload, policy, now, self._leeway)
        for name in self._header_claims:
            if _holds_control(payload.get(name)):
                raise TokenError(Failure.BAD_HEADER_VALUE, name)
        sub = payload.get("sub")
        identity = tuple(
            (name, _header_value(payload[claim], claim))
            for name, claim in self._identity_headers
            if payload.get(claim) is not None
        )
        return CachedToken(
            exp,
            payload.get("sid"),
            MappingProxyType(payload),
            scopes_of(payload),
            str(sub) if sub is not None and sub != "" else None,
            identity,
        )


def _parse(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    if len(token) > MAX_TOKEN_LENGTH or not _COMPACT_JWS.fullmatch(token):
        raise TokenError(Failure.MALFORMED)
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = _json_object(_b64decode(header_b64))
        payload = _json_object(_b64decode(payload_b64))
        signature = _b64decode(signature_b64)
    except (ValueError, RecursionError):  # binascii.Error, UnicodeDecodeError, JSONDecodeError
        raise TokenError(Failure.MALFORMED) from None
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
    return header, payload, signing_input, signature


_URL_SAFE = bytes.maketrans(b"-_", b"+/")


def _b64decode(segment: str) -> bytes:
    # base64.urlsafe_b64decode, without its per-call type checks (``_parse``'s pattern has
    # already limited the segment to the base64url alphabet).
    data = segment.encode("ascii").translate(_URL_SAFE)
    return binascii.a2b_base64(data + b"=" * (-len(data) % 4))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _json_object(data: bytes) -> dict[str, Any]:
    # One decoder built once: json.loads with an argument builds a new one on every call.
    value = _DECODER.decode(data.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _normalise_typ(typ: str) -> str:
    typ = typ.lower()
    return typ.removeprefix("application/") if typ.count("/") == 1 else typ


def _number(payload: Mapping[str, Any], name: str) -> float | None:
    value = payload.get(name, _ABSENT)
    if value is _ABSENT:
        return None
    # bool is an int subclass, and a float may be inf (1e999): neither is a time. An int past
    # a float's range (1 and 400 zeros) is no time either, and would overflow the arithmetic.
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise TokenError(Failure.BAD_CLAIM_TYPE, name) from None
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise TokenError(Failure.BAD_CLAIM_TYPE, name)


def _check_claims(
    payload: Mapping[str, Any], policy: IssuerPolicy, now: float, leeway: float
) -> float:
    exp = _number(payload, "exp")
    if exp is None:
        raise TokenError(Failure.MISSING_CLAIM, "exp")
    nbf = _number(payload, "nbf")
    iat = _number(payload, "iat")
    if exp + leeway <= now:
        raise TokenError(Failure.EXPIRED)
    if nbf is not None and nbf > now + leeway:
        raise TokenError(Failure.NOT_YET_VALID)
    if iat is not None and iat > now + leeway:
        raise TokenError(Failure.ISSUED_IN_FUTURE)
    if exp - (now if iat is None else iat) > policy.max_lifetime:
        raise TokenError(Failure.LIFETIME_TOO_LONG)

    audience = payload.get("aud")
    if audience is None:
        raise TokenError(Failure.MISSING_CLAIM, "aud")
    if isinstance(audience, list):
        if not all(isinstance(item, str) for item in audience):
            raise TokenError(Failure.BAD_CLAIM_TYPE, "aud")
        if policy.audience not in audience:
            raise TokenError(Failure.WRONG_AUDIENCE)
    elif not isinstance(audience, str):
        raise TokenError(Failure.BAD_CLAIM_TYPE, "aud")
    elif audience != policy.audience:
        raise TokenError(Failure.WRONG_AUDIENCE)

    for name in policy.required_claims:
        if payload.get(name) is None:
            raise TokenError(Failure.MISSING_CLAIM, name)
    for name in ("sub", "sid", "jti"):
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            raise TokenError(Failure.BAD_CLAIM_TYPE, name)
    return exp


def _holds_control(value: Any, depth: int = 0) -> bool:
    """True when a control character is anywhere in the claim, however deep.

    Stricter than checking the rendered header (whose JSON escapes C0 controls): an identity
    claim holding CR or LF anywhere is refused, whoever renders it upstream.
    """
    if isinstance(value, str):
        return _CONTROL.search(value) is not None
    if depth > 32:
        return True  # deeper than any identity claim has a reason to be
    if isinstance(value, list):
        return any(_holds_control(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return any(
            _holds_control(key) or _holds_control(item, depth + 1) for key, item in value.items()
        )
    return False


def _header_value(value: Any, claim: str) -> bytes:
    try:
        return render_claim(value).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is valid JSON but no UTF-8
        raise TokenError(Failure.BAD_HEADER_VALUE, claim) from None


def render_claim(value: Any) -> str:
    """A claim as a header value: lists joined by ", ", objects as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(render_claim(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """The token's scopes: ``scope`` (space-separated) and ``scp`` (a list, or a string)."""
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(item for item in value if isinstance(item, str))
    return frozenset(scopes)
