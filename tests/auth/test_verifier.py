"""Verifier: docs/behaviour.md#access-tokens, one refusal reason per test."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gateway.auth import (
    Failure,
    IssuerPolicy,
    JwksSource,
    KeyRing,
    TokenError,
    TokenIssuer,
    Verifier,
    generate_key,
)
from gateway.auth.jwks import parse_jwks
from gateway.auth.verifier import MAX_TOKEN_LENGTH, scopes_of

from .conftest import AUDIENCE, DROP, IDP, NOW, OWN, Clock, Forge, b64, public_jwk, sign, signer_for

EXTERNAL_ALGORITHMS = frozenset({"RS256", "ES256"})


def idp_policy(keys: Any, **changes: Any) -> IssuerPolicy:
    settings: dict[str, Any] = {
        "issuer": IDP,
        "audience": AUDIENCE,
        "algorithms": EXTERNAL_ALGORITHMS,
        "max_lifetime": 3600.0,
        "required_typ": None,
        "keys": keys,
    }
    settings.update(changes)
    return IssuerPolicy(**settings)


@pytest.fixture
def idp_source(idp_jwks: dict[str, Any]) -> JwksSource:
    return JwksSource(IDP, keys=parse_jwks(idp_jwks))


@pytest.fixture
def ring(keys_dir: Path) -> KeyRing:
    generate_key(keys_dir, "EdDSA")
    return KeyRing.load(keys_dir, "EdDSA")


@pytest.fixture
def issuer(ring: KeyRing, clock: Clock) -> TokenIssuer:
    return TokenIssuer(ring, issuer=OWN, audience=AUDIENCE, access_ttl=900, clock=clock)


@pytest.fixture
def verifier(idp_source: JwksSource, ring: KeyRing, clock: Clock) -> Verifier:
    return Verifier(
        {IDP: idp_policy(idp_source), OWN: IssuerPolicy.own(ring, issuer=OWN, audience=AUDIENCE)},
        leeway=30,
        clock=clock,
        header_claims=("sub", "scope", "groups", "profile"),
    )


async def refused(verifier: Verifier, token: str) -> Failure:
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token)
    assert not token or token not in caught.value.description
    return caught.value.failure


# --- tokens that pass ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("rsa-1", id="an RS256 token of a JWKS issuer verifies"),
        pytest.param("ec-1", id="an ES256 token of a JWKS issuer verifies"),
    ],
)
async def test_external_token_verifies(verifier: Verifier, forge: Forge, kid: str) -> None:
    claims = await verifier.verify(forge.token(kid))
    assert claims["sub"] == "alice" and claims["iss"] == IDP


async def test_external_eddsa_token_verifies_when_configured(
    idp_source: JwksSource, forge: Forge, clock: Clock
) -> None:
    verifier = Verifier(
        {IDP: idp_policy(idp_source, algorithms=frozenset({"EdDSA"}))}, leeway=0, clock=clock
    )
    assert (await verifier.verify(forge.token("ed-1")))["sub"] == "alice"


@pytest.mark.parametrize(
    "algorithm",
    [
        pytest.param("EdDSA", id="own EdDSA token verifies"),
        pytest.param("ES256", id="own ES256 token verifies"),
        pytest.param("RS256", id="own RS256 token verifies"),
    ],
)
async def test_own_token_verifies(keys_dir: Path, clock: Clock, algorithm: str) -> None:
    generate_key(keys_dir, algorithm)
    ring = KeyRing.load(keys_dir, algorithm)
    issuer = TokenIssuer(ring, issuer=OWN, audience=AUDIENCE, access_ttl=900, clock=clock)
    verifier = Verifier(
        {OWN: IssuerPolicy.own(ring, issuer=OWN, audience=AUDIENCE)}, leeway=30, clock=clock
    )
    token, _ = issuer.mint("alice", scope="orders:read", sid="family-1", claims={"tenant": "acme"})
    claims = await verifier.verify(token)
    assert (claims["sub"], claims["sid"], claims["tenant"]) == ("alice", "family-1", "acme")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": int(NOW) - 20}, id="expired within the leeway is accepted"),
        pytest.param({"nbf": int(NOW) + 20}, id="nbf within the leeway is accepted"),
        pytest.param({"iat": int(NOW) + 20}, id="iat within the leeway is accepted"),
        pytest.param({"aud": ["other", AUDIENCE]}, id="aud list containing ours is accepted"),
        pytest.param({"iat": DROP, "exp": int(NOW) + 3600}, id="no iat and exp-now at max"),
        pytest.param({"exp": NOW + 60.5}, id="a fractional exp is accepted"),
    ],
)
async def test_edge_of_the_rules_is_accepted(
    verifier: Verifier, forge: Forge, changes: dict[str, Any]
) -> None:
    assert (await verifier.verify(forge.token(**changes)))["sub"] == "alice"


@pytest.mark.parametrize(
    "typ",
    [
        pytest.param("at+jwt", id="typ at+jwt"),
        pytest.param("application/at+jwt", id="typ application/at+jwt equals at+jwt"),
        pytest.param("AT+JWT", id="typ compares case-insensitively"),
    ],
)
async def test_own_token_typ_forms_are_accepted(
    verifier: Verifier, ring: KeyRing, typ: str
) -> None:
    token = sign(
        {"alg": "EdDSA", "kid": ring.signing_kid, "typ": typ},
        _own_claims(),
        signer_for("EdDSA", ring.signing_key),
    )
    assert (await verifier.verify(token))["sub"] == "alice"


def _own_claims(**changes: Any) -> dict[str, Any]:
    claims = {
        "iss": OWN,
        "sub": "alice",
        "aud": AUDIENCE,
        "iat": int(NOW),
        "exp": int(NOW) + 900,
        "jti": "j1",
        "sid": "s1",
        "scope": "a",
    }
    claims.update(changes)
    return claims


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "failure"),
    [
        pytest.param(lambda f: f.token(exp=int(NOW) - 31), Failure.EXPIRED, id="expired"),
        pytest.param(
            lambda f: f.token(nbf=int(NOW) + 31), Failure.NOT_YET_VALID, id="nbf in the future"
        ),
        pytest.param(
            lambda f: f.token(iat=int(NOW) + 31), Failure.ISSUED_IN_FUTURE, id="iat in the future"
        ),
        pytest.param(lambda f: f.token(aud="other"), Failure.WRONG_AUDIENCE, id="wrong aud"),
        pytest.param(
            lambda f: f.token(aud=["other", "x"]), Failure.WRONG_AUDIENCE, id="aud list without us"
        ),
        pytest.param(lambda f: f.token(aud=DROP), Failure.MISSING_CLAIM, id="missing aud"),
        pytest.param(lambda f: f.token(aud=42), Failure.BAD_CLAIM_TYPE, id="aud a number"),
        pytest.param(
            lambda f: f.token(iss="https://evil.test/"), Failure.UNKNOWN_ISSUER, id="wrong iss"
        ),
        pytest.param(
            lambda f: f.token(iss=IDP.rstrip("/")),
            Failure.UNKNOWN_ISSUER,
            id="iss compared as an exact string",
        ),
        pytest.param(lambda f: f.token(iss=DROP), Failure.MISSING_CLAIM, id="missing iss"),
        pytest.param(lambda f: f.token(iss=["x"]), Failure.BAD_CLAIM_TYPE, id="iss a list"),
        pytest.param(lambda f: f.token(exp=DROP), Failure.MISSING_CLAIM, id="missing exp"),
        pytest.param(
            lambda f: f.token(exp=str(int(NOW) + 60)), Failure.BAD_CLAIM_TYPE, id="exp a string"
        ),
        pytest.param(lambda f: f.token(exp=True), Failure.BAD_CLAIM_TYPE, id="exp a boolean"),
        pytest.param(lambda f: f.token(exp=None), Failure.BAD_CLAIM_TYPE, id="exp null"),
        pytest.param(lambda f: f.token(exp=1e999), Failure.MALFORMED, id="exp Infinity (not JSON)"),
        pytest.param(lambda f: f.token(nbf="yesterday"), Failure.BAD_CLAIM_TYPE, id="nbf a string"),
        pytest.param(lambda f: f.token(iat=[1]), Failure.BAD_CLAIM_TYPE, id="iat a list"),
        pytest.param(lambda f: f.token(sub=7), Failure.BAD_CLAIM_TYPE, id="sub a number"),
        pytest.param(lambda f: f.token(sid={"a": 1}), Failure.BAD_CLAIM_TYPE, id="sid an object"),
        pytest.param(
            lambda f: f.token(exp=int(NOW) + 3601),
            Failure.LIFETIME_TOO_LONG,
            id="exp - iat above max_lifetime",
        ),
        pytest.param(
            lambda f: f.token(iat=DROP, exp=int(NOW) + 3601),
            Failure.LIFETIME_TOO_LONG,
            id="no iat and exp - now above max_lifetime",
        ),
        pytest.param(
            lambda f: f.token(header={"crit": ["exp"]}), Failure.CRIT_HEADER, id="crit header"
        ),
        pytest.param(lambda f: f.token("rsa-9"), Failure.UNKNOWN_KEY, id="unknown kid"),
        pytest.param(
            lambda f: f.token("../../etc/passwd"), Failure.UNKNOWN_KEY, id="path traversal kid"
        ),
        pytest.param(
            lambda f: f.token(None), Failure.UNKNOWN_KEY, id="no kid when the set has several keys"
        ),
        pytest.param(lambda f: f.token(header={"kid": 5}), Failure.MALFORMED, id="kid a number"),
        pytest.param(lambda f: f.token(header={"alg": DROP}), Failure.MALFORMED, id="no alg"),
        pytest.param(
            lambda f: f.token("ed-1"),
            Failure.ALGORITHM_NOT_ALLOWED,
            id="EdDSA not configured for this issuer",
        ),
        pytest.param(
            lambda f: f.token("rsa-1", alg="ES256", key=f.keys["ec-1"][1]),
            Failure.ALGORITHM_NOT_ALLOWED,
            id="ES256 header against an RSA key",
        ),
        pytest.param(
            lambda f: f.token("rsa-1", alg="RS512"),
            Failure.ALGORITHM_NOT_ALLOWED,
            id="RS512 with a key published for RS256",
        ),
    ],
)
async def test_refused(
    verifier: Verifier, forge: Forge, make: Callable[[Forge], str], failure: Failure
) -> None:
    assert await refused(verifier, make(forge)) is failure


async def test_exp_overflowing_to_infinity_is_a_bad_claim_type(
    verifier: Verifier, forge: Forge, rsa_key: Any
) -> None:
    payload = json.dumps(forge.claims(exp=0)).replace('"exp": 0', '"exp": 1e999').encode()
    token = sign({"alg": "RS256", "kid": "rsa-1"}, payload, signer_for("RS256", rsa_key))
    assert await refused(verifier, token) is Failure.BAD_CLAIM_TYPE


@pytest.mark.parametrize("exp", ["1" + "0" * 400, "-1" + "0" * 400])
async def test_an_integer_time_past_a_floats_range_is_a_bad_claim_type(
    verifier: Verifier, forge: Forge, rsa_key: Any, exp: str
) -> None:
    payload = json.dumps(forge.claims(exp=0)).replace('"exp": 0', f'"exp": {exp}').encode()
    token = sign({"alg": "RS256", "kid": "rsa-1"}, payload, signer_for("RS256", rsa_key))
    assert await refused(verifier, token) is Failure.BAD_CLAIM_TYPE


async def test_bad_signature_from_another_key(
    verifier: Verifier, forge: Forge, rsa_key_2: Any
) -> None:
    assert await refused(verifier, forge.token("rsa-1", key=rsa_key_2)) is Failure.BAD_SIGNATURE


async def test_payload_changed_after_signing_is_a_bad_signature(
    verifier: Verifier, forge: Forge
) -> None:
    header, _, signature = forge.token().split(".")
    payload = b64(json.dumps(forge.claims(sub="admin")).encode())
    token = f"{header}.{payload}.{signature}"
    assert await refused(verifier, token) is Failure.BAD_SIGNATURE


async def test_empty_signature_is_a_bad_signature(verifier: Verifier, forge: Forge) -> None:
    token = forge.token().rsplit(".", 1)[0] + "."
    assert await refused(verifier, token) is Failure.BAD_SIGNATURE


async def test_alg_none_is_refused(verifier: Verifier, forge: Forge) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = b64(json.dumps(forge.claims()).encode())
    assert await refused(verifier, f"{header}.{payload}.") is Failure.ALGORITHM_NOT_ALLOWED


async def test_hs256_signed_with_the_rsa_public_key_pem_is_refused(
    verifier: Verifier, forge: Forge, rsa_key: Any
) -> None:
    # The classic key-confusion attack: the public key, which anyone can fetch, as HMAC secret.
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = sign(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
        forge.claims(),
        lambda message: hmac.new(pem, message, hashlib.sha256).digest(),
    )
    assert await refused(verifier, token) is Failure.ALGORITHM_NOT_ALLOWED


def test_an_hmac_algorithm_cannot_be_configured(idp_source: JwksSource) -> None:
    with pytest.raises(ValueError, match="HS256"):
        idp_policy(idp_source, algorithms=frozenset({"RS256", "HS256"}))


@pytest.mark.parametrize(
    "parameter",
    [
        pytest.param("jku", id="a jku header is not followed"),
        pytest.param("x5u", id="an x5u header is not followed"),
    ],
)
async def test_key_url_headers_are_not_followed(
    verifier: Verifier, forge: Forge, jwks_server: Any, parameter: str
) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    jwks_server.jwks = {"keys": [public_jwk(attacker, "attacker", "ES256")]}
    token = forge.token("attacker", alg="ES256", key=attacker, header={parameter: jwks_server.url})
    assert await refused(verifier, token) is Failure.UNKNOWN_KEY
    assert jwks_server.fetches == 0


async def test_an_embedded_jwk_header_is_not_used(verifier: Verifier, forge: Forge) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    token = forge.token(
        "attacker",
        alg="ES256",
        key=attacker,
        header={"jwk": public_jwk(attacker, "attacker", "ES256")},
    )
    assert await refused(verifier, token) is Failure.UNKNOWN_KEY


async def test_an_embedded_jwk_with_a_known_kid_does_not_replace_our_key(
    verifier: Verifier, forge: Forge
) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    token = forge.token("ec-1", key=attacker, header={"jwk": public_jwk(attacker, "ec-1", "ES256")})
    assert await refused(verifier, token) is Failure.BAD_SIGNATURE


async def test_own_kid_path_traversal_never_reads_a_file(
    verifier: Verifier, keys_dir: Path, clock: Clock
) -> None:
    # A key the attacker placed next to ours, named by a relative kid.
    attacker = ed25519.Ed25519PrivateKey.generate()
    outside = keys_dir.parent / "outside"
    outside.mkdir()
    (outside / "evil.pem").write_bytes(
        attacker.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    token = sign(
        {"alg": "EdDSA", "typ": "at+jwt", "kid": "../outside/evil"},
        _own_claims(),
        signer_for("EdDSA", attacker),
    )
    assert await refused(verifier, token) is Failure.UNKNOWN_KEY


@pytest.mark.parametrize(
    "typ",
    [
        pytest.param(DROP, id="own token without typ"),
        pytest.param("JWT", id="own token with typ JWT"),
        pytest.param("application/jwt", id="own token with typ application/jwt"),
        pytest.param(["at+jwt"], id="own token with a list typ"),
    ],
)
async def test_own_token_needs_typ_at_jwt(verifier: Verifier, ring: KeyRing, typ: Any) -> None:
    header = {"alg": "EdDSA", "kid": ring.signing_kid}
    if typ is not DROP:
        header["typ"] = typ
    token = sign(header, _own_claims(), signer_for("EdDSA", ring.signing_key))
    assert await refused(verifier, token) is Failure.BAD_TYPE


async def test_own_token_without_jti_is_refused(verifier: Verifier, ring: KeyRing) -> None:
    claims = _own_claims()
    del claims["jti"]
    token = sign(
        {"alg": "EdDSA", "kid": ring.signing_kid, "typ": "at+jwt"},
        claims,
        signer_for("EdDSA", ring.signing_key),
    )
    assert await refused(verifier, token) is Failure.MISSING_CLAIM


async def test_trusted_issuer_may_require_a_typ(
    idp_source: JwksSource, forge: Forge, clock: Clock
) -> None:
    verifier = Verifier(
        {IDP: idp_policy(idp_source, required_typ="application/at+jwt")}, leeway=0, clock=clock
    )
    assert await refused(verifier, forge.token()) is Failure.BAD_TYPE
    assert await verifier.verify(forge.token(header={"typ": "at+JWT"}))


async def test_a_single_key_source_accepts_a_token_without_kid(
    rsa_key: Any, forge: Forge, clock: Clock
) -> None:
    source = JwksSource(IDP, keys=parse_jwks({"keys": [public_jwk(rsa_key, None, "RS256")]}))
    verifier = Verifier({IDP: idp_policy(source)}, leeway=0, clock=clock)
    assert (await verifier.verify(forge.token(None)))["sub"] == "alice"


def _raw(header: bytes, payload: bytes) -> str:
    return f"{b64(header)}.{b64(payload)}.c2ln"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty token"),
        pytest.param("abc", id="one segment"),
        pytest.param("abc.def", id="two segments"),
        pytest.param("garbage.garbage.garbage", id="three segments of garbage"),
        pytest.param("a.b.c.d.e", id="five segments (a JWE)"),
        pytest.param("x" * 100_000, id="100 kB of garbage"),
        pytest.param("eyJ" + "A" * (MAX_TOKEN_LENGTH + 10) + ".e.e", id="over the length limit"),
        pytest.param("!!!.???.***", id="not base64url"),
        pytest.param("ey J.e.e", id="a space inside"),
        pytest.param(_raw(b"not json", b"{}"), id="header not JSON"),
        pytest.param(_raw(b"[1,2]", b"{}"), id="header a JSON array"),
        pytest.param(_raw(b"null", b"{}"), id="header JSON null"),
        pytest.param(_raw(b"{}", b"42"), id="payload a number"),
        pytest.param(_raw(b"\xff\xfe{}", b"{}"), id="header not UTF-8"),
        pytest.param(_raw(b'{"alg":"RS256"}', b'{"exp":NaN}'), id="NaN in the payload"),
        pytest.param(_raw(b"[" * 5000, b"{}"), id="deeply nested header"),
        pytest.param("eyJhbGciOiJSUzI1NiJ9A.e30.sig", id="bad base64 length"),
        pytest.param("é.é.é", id="non-ASCII characters"),
    ],
)
async def test_malformed_token_is_refused(verifier: Verifier, token: str) -> None:
    assert await refused(verifier, token) is Failure.MALFORMED


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"sub": "alice\r\nX-Admin: yes"}, id="CR LF in sub"),
        pytest.param({"sub": "alice\x00"}, id="NUL in sub"),
        pytest.param({"scope": "a\nb"}, id="LF in scope"),
        pytest.param({"groups": ["ok", "bad\r"]}, id="CR in a list item"),
        pytest.param({"profile": {"name": "x\x85y"}}, id="a C1 control in an object claim"),
        pytest.param({"profile": {"a\nb": 1}}, id="LF in a key of an object claim"),
        pytest.param({"groups": [["x", {"y": "\u2028"}]]}, id="a line separator deep in a list"),
    ],
)
async def test_control_characters_in_a_header_claim_are_refused(
    verifier: Verifier, forge: Forge, changes: dict[str, Any]
) -> None:
    assert await refused(verifier, forge.token(**changes)) is Failure.BAD_HEADER_VALUE


async def test_control_characters_in_other_claims_are_fine(
    verifier: Verifier, forge: Forge
) -> None:
    assert await verifier.verify(forge.token(note="line one\nline two"))


async def test_revoked_session_is_refused(
    idp_source: JwksSource, forge: Forge, clock: Clock
) -> None:
    verifier = Verifier({IDP: idp_policy(idp_source)}, leeway=0, clock=clock, revoked={"s-9"})
    assert await refused(verifier, forge.token(sid="s-9")) is Failure.REVOKED


async def test_revoked_session_is_refused_when_already_cached(
    idp_source: JwksSource, forge: Forge, clock: Clock
) -> None:
    revoked: set[str] = set()
    verifier = Verifier({IDP: idp_policy(idp_source)}, leeway=0, clock=clock, revoked=revoked)
    token = forge.token(sid="s-9")
    await verifier.verify(token)
    assert len(verifier.cache) == 1
    revoked.add("s-9")
    assert await refused(verifier, token) is Failure.REVOKED


async def test_claims_are_read_only(verifier: Verifier, forge: Forge) -> None:
    claims = await verifier.verify(forge.token())
    with pytest.raises(TypeError):
        claims["sub"] = "admin"  # type: ignore[index]


# --- helpers for the other layers -------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        pytest.param({"scope": "a b  c"}, {"a", "b", "c"}, id="space-separated scope"),
        pytest.param({"scp": ["a", "b"]}, {"a", "b"}, id="scp list"),
        pytest.param({"scp": "a b"}, {"a", "b"}, id="scp string"),
        pytest.param({"scope": "a", "scp": ["b"]}, {"a", "b"}, id="both are read"),
        pytest.param({"scope": 5, "scp": [1, "x"]}, {"x"}, id="non-strings are ignored"),
        pytest.param({}, set(), id="no scope at all"),
    ],
)
def test_scopes_of(claims: dict[str, Any], scopes: set[str]) -> None:
    assert scopes_of(claims) == scopes


def with_identity(source: JwksSource, clock: Clock, *headers: tuple[bytes, str]) -> Verifier:
    return Verifier({IDP: idp_policy(source)}, leeway=30, clock=clock, identity_headers=headers)


async def test_admit_renders_identity_headers_once_per_token(
    idp_source: JwksSource, forge: Forge, clock: Clock
) -> None:
    verifier = with_identity(
        idp_source,
        clock,
        (b"x-auth-subject", "sub"),
        (b"x-auth-groups", "groups"),
        (b"x-auth-profile", "profile"),
        (b"x-auth-tenant", "tenant"),
    )
    token = forge.token(
        groups=["ops", "dev"], profile={"b": 1, "a": True}, scope="orders:read", scp=["x"]
    )
    admitted = await verifier.admit(token)
    assert admitted.identity == (
        (b"x-auth-subject", b"alice"),
        (b"x-auth-groups", b"ops, dev"),
        (b"x-auth-profile", b'{"a":true,"b":1}'),
    )
    assert admitted.scopes == {"orders:read", "x"}
    assert admitted.sub == "alice"
    assert await verifier.admit(token) is admitted  # served from the cache, nothing rendered


async def test_identity_claims_are_checked_for_control_characters(
    idp_source: JwksSource, forge: Forge, clock: Clock
) -> None:
    verifier = with_identity(idp_source, clock, (b"x-auth-tenant", "tenant"))
    assert await refused(verifier, forge.token(tenant="acme\r\nx-admin: 1")) == (
        Failure.BAD_HEADER_VALUE
    )


async def test_an_identity_claim_that_is_not_utf_8_is_refused(
    idp_source: JwksSource, forge: Forge, clock: Clock
) -> None:
    # A lone surrogate is valid JSON ("\\ud800") but cannot be encoded for a header.
    verifier = with_identity(idp_source, clock, (b"x-auth-tenant", "tenant"))
    assert await refused(verifier, forge.token(tenant="acme\ud800")) == Failure.BAD_HEADER_VALUE
