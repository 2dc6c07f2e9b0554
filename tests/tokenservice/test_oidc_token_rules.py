"""Tokens no real provider would sign, forged here: each refused by the ID-token rules.

The tokens a real provider signs are tested against panva's oidc-provider
(``test_oidc_tokens.py``); ``alg: none``, HMAC with the public key, missing ``azp`` or a logout
token carrying a nonce need a forger.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth.jwks import JwksSource, parse_jwks
from gateway.tokenservice.oidc_tokens import BACKCHANNEL_EVENT, OidcTokenError, TokenRules, validate

ISSUER = "https://idp.example.com"
CLIENT = "gateway"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_JWK = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "k1"}
RULES = TokenRules(
    issuer=ISSUER,
    client_id=CLIENT,
    algorithms=frozenset({"RS256", "HS256"}),  # a provider advertising HS256 changes nothing
    keys=JwksSource(ISSUER, keys=parse_jwks({"keys": [PUBLIC_JWK]})),
    leeway=0,
)


def claims(**overrides: Any) -> dict[str, Any]:
    """Good ID-token claims with ``overrides``; ``iat`` and ``exp`` given as ints are taken as
    seconds from now, computed when the test runs (not when it is collected)."""
    now = int(time.time())
    for name in ("iat", "exp"):
        if isinstance(overrides.get(name), int):
            overrides[name] += now
    base = {"iss": ISSUER, "aud": CLIENT, "sub": "alice", "iat": now, "exp": now + 60, "nonce": "n"}
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def signed(payload: dict[str, Any]) -> str:
    return jwt.encode(payload, KEY, algorithm="RS256", headers={"kid": "k1"})


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_a_well_formed_token_passes() -> None:
    assert (await validate(signed(claims()), RULES, nonce="n"))["sub"] == "alice"


async def test_alg_none_is_refused() -> None:
    token = f"{b64({'alg': 'none', 'kid': 'k1'})}.{b64(claims())}."
    with pytest.raises(OidcTokenError, match="algorithm"):
        await validate(token, RULES, nonce="n")


async def test_hmac_with_the_public_key_is_refused() -> None:
    public_pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64({"alg": "HS256", "kid": "k1", "typ": "JWT"})
    body = b64(claims())
    mac = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(OidcTokenError, match="algorithm"):
        await validate(token, RULES, nonce="n")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"aud": [CLIENT, "other"]}, "azp", id="several audiences without azp"),
        pytest.param({"aud": [CLIENT, "other"], "azp": "other"}, "azp", id="azp of another"),
        pytest.param({"azp": "other"}, "azp", id="azp of another, one audience"),
        pytest.param({"iss": "https://elsewhere"}, "iss", id="another issuer"),
        pytest.param({"aud": "other"}, "aud", id="another audience"),
        pytest.param({"exp": -5}, "expired", id="expired"),
        pytest.param({"iat": 300}, "future", id="issued in the future"),
        pytest.param({"iat": -3600}, "too long ago", id="issued long ago"),
        pytest.param({"nonce": None}, "nonce", id="no nonce"),
    ],
)
async def test_an_id_token_is_refused(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(OidcTokenError, match=reason):
        await validate(signed(claims(**overrides)), RULES, nonce="n")


async def test_several_audiences_with_our_azp_pass() -> None:
    token = signed(claims(aud=[CLIENT, "other"], azp=CLIENT))
    assert await validate(token, RULES, nonce="n")


def logout(**overrides: Any) -> dict[str, Any]:
    base = {"nonce": None, "exp": None, "sid": "s1", "events": {BACKCHANNEL_EVENT: {}}, "jti": "j"}
    return claims(**{**base, **overrides})


async def test_a_logout_token_passes() -> None:
    assert (await validate(signed(logout()), RULES, nonce=None, logout=True))["sid"] == "s1"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"nonce": "n"}, "nonce", id="with a nonce"),
        pytest.param({"events": None}, "event", id="without the event"),
        pytest.param({"events": {"other": {}}}, "event", id="another event"),
        pytest.param({"sid": None, "sub": None}, "neither", id="neither sid nor sub"),
        pytest.param({"aud": "other"}, "aud", id="another audience"),
    ],
)
async def test_a_logout_token_is_refused(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(OidcTokenError, match=reason):
        await validate(signed(logout(**overrides)), RULES, nonce=None, logout=True)
