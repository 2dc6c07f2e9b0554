"""The identity assertion: its claims, its lifetime, its reuse per token and route, its bound."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import jwt
import pytest

from gateway.auth.assertion import ASSERTION_TYPE, IdentityAsserter
from gateway.auth.keys import KeyRing
from gateway.auth.token_cache import CachedToken
from tests.auth.conftest import NOW, OWN, Clock
from tests.tokens import new_private_key

IDENTITY = ((b"x-auth-subject", b"alice"),)


def ring(algorithm: str = "EdDSA") -> KeyRing:
    return KeyRing({"20260101T000000Z-a": new_private_key(algorithm)})


def admitted(exp: float = NOW + 900, sid: str | None = "family-1", **claims: Any) -> CachedToken:
    payload = {"sub": "alice", "scope": "orders:read orders:write", "tenant": "acme", **claims}
    return CachedToken(
        exp,
        sid,
        MappingProxyType(payload),
        frozenset(payload["scope"].split()),
        "alice",
        IDENTITY,
    )


def asserter(keys: KeyRing, clock: Clock, **settings: Any) -> IdentityAsserter:
    options: dict[str, Any] = {
        "issuer": OWN,
        "header": "X-Gateway-Assertion",
        "ttl": 60,
        "claims": ("sub", "scope", "tenant"),
        "clock": clock,
        **settings,
    }
    return IdentityAsserter(keys, **options)


def decoded(keys: KeyRing, value: bytes, audience: str, now: float = NOW) -> dict[str, Any]:
    """The assertion verified as an upstream would: the published JWKS, its algorithm, aud."""
    kid = jwt.get_unverified_header(value.decode())["kid"]
    jwk = next(k for k in keys.jwks()["keys"] if k["kid"] == kid)
    key = jwt.PyJWK(jwk)
    claims: dict[str, Any] = jwt.decode(
        value,
        key,
        algorithms=[jwk["alg"]],
        audience=audience,
        issuer=OWN,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["exp"] > now or claims["exp"] == int(now)
    return claims


def assertion_of(identity: tuple[tuple[bytes, bytes], ...]) -> bytes:
    values = [value for name, value in identity if name == b"x-gateway-assertion"]
    assert len(values) == 1
    return values[0]


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_the_assertion_verifies_with_the_published_keys_and_carries_the_identity(
    algorithm: str,
) -> None:
    keys = ring(algorithm)
    identity = asserter(keys, Clock()).identity("token-a", "orders", admitted())
    assert identity[:1] == IDENTITY
    claims = decoded(keys, assertion_of(identity), "orders")
    assert claims == {
        "iss": OWN,
        "aud": "orders",
        "sub": "alice",
        "scope": "orders:read orders:write",
        "sid": "family-1",
        "tenant": "acme",
        "iat": int(NOW),
        "exp": int(NOW) + 60,
    }


def test_the_assertion_has_its_own_type_and_the_signing_kid() -> None:
    keys = ring()
    value = assertion_of(asserter(keys, Clock()).identity("t", "orders", admitted()))
    header = jwt.get_unverified_header(value.decode())
    assert header["typ"] == ASSERTION_TYPE == "gateway-identity+jwt"
    assert header["kid"] == keys.signing_kid


def test_the_assertion_never_outlives_the_access_token() -> None:
    keys = ring()
    value = assertion_of(asserter(keys, Clock()).identity("t", "r", admitted(exp=NOW + 10.7)))
    assert decoded(keys, value, "r")["exp"] == int(NOW) + 10


def test_a_token_without_sid_gives_an_assertion_without_sid() -> None:
    keys = ring()
    value = assertion_of(asserter(keys, Clock()).identity("t", "r", admitted(sid=None)))
    assert "sid" not in decoded(keys, value, "r")


def test_an_identity_claim_cannot_replace_the_assertions_own_claims() -> None:
    keys = ring()
    made = asserter(keys, Clock(), claims=("aud", "exp", "iss", "tenant"))
    value = assertion_of(made.identity("t", "orders", admitted(aud="other", iss="x")))
    claims = decoded(keys, value, "orders")
    assert (claims["aud"], claims["iss"], claims["exp"]) == ("orders", OWN, int(NOW) + 60)


def test_an_assertion_is_reused_for_the_same_token_and_route() -> None:
    clock = Clock()
    made = asserter(ring(), clock)
    first = made.identity("t", "orders", admitted())
    clock.advance(29)
    assert made.identity("t", "orders", admitted()) is first


def test_another_route_or_token_gets_its_own_assertion() -> None:
    made = asserter(ring(), Clock())
    first = assertion_of(made.identity("t", "orders", admitted()))
    assert assertion_of(made.identity("t", "users", admitted())) != first
    assert assertion_of(made.identity("u", "orders", admitted())) is not first
    assert len(made) == 3


def test_an_assertion_past_half_its_life_is_signed_again() -> None:
    keys = ring()
    clock = Clock()
    made = asserter(keys, clock)
    first = assertion_of(made.identity("t", "orders", admitted()))
    clock.advance(31)
    second = assertion_of(made.identity("t", "orders", admitted()))
    assert second != first
    assert decoded(keys, second, "orders", clock.now)["iat"] == int(NOW) + 31


def test_an_assertion_near_the_tokens_end_is_still_reused_for_a_second() -> None:
    clock = Clock()
    made = asserter(ring(), clock)
    first = made.identity("t", "orders", admitted(exp=NOW - 5))  # within the leeway
    clock.advance(0.5)
    assert made.identity("t", "orders", admitted(exp=NOW - 5)) is first
    clock.advance(0.6)
    assert made.identity("t", "orders", admitted(exp=NOW - 5)) is not first


def test_the_reuse_cache_is_bounded() -> None:
    made = asserter(ring(), Clock(), cache_size=64)
    for index in range(1000):
        made.identity(f"token-{index}", "orders", admitted())
    assert len(made) <= 64


def test_an_assertion_shorter_than_a_second_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one second"):
        asserter(ring(), Clock(), ttl=0.5)
