"""TokenIssuer: what the gateway's own access tokens carry."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from gateway.auth import IssuerPolicy, KeyRing, TokenIssuer, Verifier, generate_key

from .conftest import AUDIENCE, NOW, OWN, Clock


@pytest.fixture
def ring(keys_dir: Path) -> KeyRing:
    generate_key(keys_dir, "ES256")
    return KeyRing.load(keys_dir)


@pytest.fixture
def issuer(ring: KeyRing, clock: Clock) -> TokenIssuer:
    return TokenIssuer(ring, issuer=OWN, audience=AUDIENCE, access_ttl=900, clock=clock)


def test_header_is_at_jwt_with_the_newest_kid(issuer: TokenIssuer, ring: KeyRing) -> None:
    token, _ = issuer.mint("alice", scope="a", sid="s1", claims={})
    assert jwt.get_unverified_header(token) == {
        "alg": "ES256",
        "kid": ring.signing_kid,
        "typ": "at+jwt",
    }


def test_payload_has_the_registered_claims_and_the_users(issuer: TokenIssuer) -> None:
    token, expires_in = issuer.mint("alice", scope="a b", sid="s1", claims={"tenant": "acme"})
    claims = jwt.decode(token, options={"verify_signature": False})
    assert expires_in == 900
    assert claims.pop("jti")
    assert claims == {
        "iss": OWN,
        "sub": "alice",
        "aud": AUDIENCE,
        "iat": int(NOW),
        "exp": int(NOW) + 900,
        "sid": "s1",
        "scope": "a b",
        "tenant": "acme",
    }


def test_user_claims_cannot_override_registered_ones(issuer: TokenIssuer) -> None:
    hostile = {"exp": 9_999_999_999, "iss": "x", "aud": "y", "sub": "root", "sid": "z", "nbf": 0}
    token, _ = issuer.mint("alice", scope="a", sid="s1", claims=hostile)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["exp"], claims["iss"], claims["aud"]) == (int(NOW) + 900, OWN, AUDIENCE)
    assert (claims["sub"], claims["sid"]) == ("alice", "s1")
    assert "nbf" not in claims


def test_ttl_overrides_access_ttl(issuer: TokenIssuer) -> None:
    token, expires_in = issuer.mint("alice", scope="", sid=None, claims={}, ttl=60)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert expires_in == 60 and claims["exp"] - claims["iat"] == 60
    assert "sid" not in claims


def test_every_token_has_a_fresh_jti(issuer: TokenIssuer) -> None:
    jtis = {
        jwt.decode(
            issuer.mint("a", scope="", sid="s", claims={})[0], options={"verify_signature": False}
        )["jti"]
        for _ in range(20)
    }
    assert len(jtis) == 20


def test_a_swapped_key_ring_signs_from_then_on(
    issuer: TokenIssuer, keys_dir: Path, clock: Clock
) -> None:
    new_kid = generate_key(keys_dir, "EdDSA", clock=Clock(NOW + 10**6))
    issuer.keyring = KeyRing.load(keys_dir)
    token, _ = issuer.mint("alice", scope="a", sid="s1", claims={})
    assert jwt.get_unverified_header(token)["kid"] == new_kid
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"


async def test_minted_token_passes_the_own_issuer_policy(
    issuer: TokenIssuer, ring: KeyRing, clock: Clock
) -> None:
    verifier = Verifier(
        {OWN: IssuerPolicy.own(ring, issuer=OWN, audience=AUDIENCE)}, leeway=30, clock=clock
    )
    token, _ = issuer.mint("alice", scope="a", sid="s1", claims={"tenant": "acme"})
    assert (await verifier.verify(token))["tenant"] == "acme"


@pytest.mark.parametrize(
    ("sub", "ttl"),
    [
        pytest.param("", None, id="an empty subject"),
        pytest.param("alice", 0, id="a zero ttl"),
    ],
)
def test_nonsense_is_refused(issuer: TokenIssuer, sub: str, ttl: float | None) -> None:
    with pytest.raises(ValueError):
        issuer.mint(sub, scope="", sid=None, claims={}, ttl=ttl)
