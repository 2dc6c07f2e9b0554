"""Properties of the ``Verifier`` (docs/behaviour.md#access-tokens), on generated tokens.

Whatever string arrives as a bearer token, ``verify`` and ``admit`` return claims or raise
``TokenError`` with one ``Failure``, never another exception (a garbage token is a 401, never
a 500), and the refusal never quotes the token. Tokens signed with the right key but with
generated headers and claims (wrong types, huge numbers, control characters, nesting) are
refused the same way, and one that is admitted satisfies the policy: a known issuer, an
allowed algorithm, the audience, a time window within the leeway, and identity header values
that cannot split or smuggle a header.

The verifier is the one ``test_verifier.py`` builds, made once here (hypothesis runs every
example in one test call, so a function-scoped fixture would be shared anyway).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import event, example, given
from hypothesis import strategies as st

from gateway.auth import Failure, IssuerPolicy, JwksSource, KeyRing, TokenError, Verifier
from gateway.auth.jwks import parse_jwks
from gateway.auth.token_cache import CachedToken

from .conftest import AUDIENCE, IDP, NOW, OWN, b64, public_jwk, sign, signer_for

LEEWAY = 30
IDP_KEY = ec.generate_private_key(ec.SECP256R1())
OWN_KEY = ed25519.Ed25519PrivateKey.generate()
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())  # known to nobody
IDENTITY = ((b"x-auth-subject", "sub"), (b"x-auth-scopes", "scope"), (b"x-auth-groups", "groups"))


def make_verifier() -> Verifier:
    idp = JwksSource(IDP, keys=parse_jwks({"keys": [public_jwk(IDP_KEY, "ec-1", "ES256")]}))
    own = KeyRing({"own-1": OWN_KEY})
    return Verifier(
        {
            IDP: IssuerPolicy(
                issuer=IDP,
                audience=AUDIENCE,
                algorithms=frozenset({"RS256", "ES256"}),
                max_lifetime=3600.0,
                required_typ=None,
                keys=idp,
            ),
            OWN: IssuerPolicy.own(own, issuer=OWN, audience=AUDIENCE),
        },
        leeway=LEEWAY,
        clock=lambda: NOW,
        header_claims=("profile",),
        identity_headers=IDENTITY,
        revoked={"revoked-sid"},
    )


VERIFIER = make_verifier()


def admitted(token: str) -> CachedToken | TokenError:
    """What ``admit`` says of ``token``; any exception but ``TokenError`` fails the test."""
    try:
        entry = asyncio.run(VERIFIER.admit(token))
    except TokenError as refusal:
        event(refusal.failure.label)
        return refusal
    event("admitted")
    return entry


# -- strings ---------------------------------------------------------------------------------

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([10**400, -(10**400), 2**63, 1e308]),
        st.floats(),
        st.text(max_size=8),
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
segments = st.one_of(
    st.text(B64URL, max_size=40),
    json_values.map(lambda v: b64(json.dumps(v).encode())),
    st.binary(max_size=30).map(lambda raw: b64(raw)),
    # JSON nested past the recursion limit, still within MAX_TOKEN_LENGTH.
    st.sampled_from([2, 3000, 5000]).map(lambda depth: b64(b"[" * depth + b"]" * depth)),
)
strings = st.one_of(
    st.text(max_size=60),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", segments, segments, segments),
    st.lists(segments, max_size=5).map(".".join),
    st.just("a." * 9000),  # over MAX_TOKEN_LENGTH
)


@given(strings)
@example("")
@example("..")
@example("e30.e30.")  # {} . {} . no signature
@example(b64(b'{"alg":"none"}') + "." + b64(b'{"iss":"' + IDP.encode() + b'"}') + ".")
def test_any_string_is_admitted_or_refused_with_a_token_error(token: str) -> None:
    result = admitted(token)
    if isinstance(result, TokenError):
        assert isinstance(result.failure, Failure)
    try:
        claims = asyncio.run(VERIFIER.verify(token))
    except TokenError as refusal:
        assert isinstance(result, TokenError) and refusal.failure == result.failure
    else:
        assert isinstance(result, CachedToken) and claims == result.claims


@given(strings)
def test_a_refusal_never_quotes_the_token(token: str) -> None:
    result = admitted(token)
    if isinstance(result, TokenError) and len(token) >= 12:
        assert token not in str(result) and token not in result.description


# -- signed tokens -----------------------------------------------------------------------------


def claim(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(plausible, plausible, plausible, json_values)


def times(offsets: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return claim(offsets.map(lambda offset: int(NOW) + offset))


CONTROL_TEXT = st.sampled_from(
    ["alice", "a\r\nX-Admin: yes", "a\x00", "a\x85", "a\u2028", "\ud800"]
)
DROP = object()  # an override that removes the claim or header parameter
CLAIMS: dict[str, st.SearchStrategy[Any]] = {
    "iss": claim(st.sampled_from([IDP, OWN, "https://elsewhere/"])),
    "aud": claim(st.sampled_from([AUDIENCE, [AUDIENCE], ["other", AUDIENCE], "other", []])),
    "exp": times(st.integers(-600, 7200)),
    "iat": times(st.integers(-3600, 600)),
    "nbf": times(st.integers(-600, 600)),
    "sub": claim(CONTROL_TEXT),
    "sid": claim(st.sampled_from(["s-1", "revoked-sid"])),
    "jti": claim(st.text(max_size=8)),
    "scope": claim(st.sampled_from(["orders:read", "a b", "x\ny"])),
    "groups": claim(st.lists(CONTROL_TEXT, max_size=3)),
    "profile": claim(st.dictionaries(CONTROL_TEXT, CONTROL_TEXT, max_size=2)),
}
HEADER: dict[str, st.SearchStrategy[Any]] = {
    "alg": claim(st.sampled_from(["ES256", "EdDSA", "RS256", "none", "HS256", "ES384"])),
    "kid": claim(st.sampled_from(["ec-1", "own-1", "unknown"])),
    "typ": claim(st.sampled_from(["at+jwt", "application/at+jwt", "JWT"])),
    "crit": claim(st.just(["exp"])),
}
SIGNERS: dict[str, Callable[[bytes], bytes]] = {
    "idp": signer_for("ES256", IDP_KEY),
    "own": signer_for("EdDSA", OWN_KEY),
    "other": signer_for("ES256", OTHER_KEY),
    "none": lambda message: b"",
}


def overrides(
    fields: dict[str, st.SearchStrategy[Any]], most: int
) -> st.SearchStrategy[dict[str, Any]]:
    """Up to ``most`` fields set to a generated value, or removed (``DROP``)."""
    return st.dictionaries(st.sampled_from(sorted(fields)), st.just(DROP), max_size=most).flatmap(
        lambda chosen: st.fixed_dictionaries(
            {name: st.one_of(fields[name], st.just(DROP)) for name in chosen}
        )
    )


@st.composite
def signed_tokens(draw: st.DrawFn, claims: dict[str, st.SearchStrategy[Any]] = CLAIMS) -> str:
    """A valid token of the IdP or of the gateway itself, with a few headers parameters and
    ``claims`` changed, signed mostly with the key of its issuer."""
    issuer = draw(st.sampled_from(["idp", "own"]))
    header: dict[str, Any] = (
        {"alg": "ES256", "kid": "ec-1"}
        if issuer == "idp"
        else {"alg": "EdDSA", "kid": "own-1", "typ": "at+jwt"}
    )
    payload: dict[str, Any] = {
        "iss": IDP if issuer == "idp" else OWN,
        "aud": AUDIENCE,
        "exp": int(NOW) + 300,
        "iat": int(NOW),
        "sub": "alice",
        "jti": "j-1",
        "scope": "orders:read",
    }
    for fields, changes in (
        (header, draw(overrides(HEADER, 1))),
        (payload, draw(overrides(claims, 3))),
    ):
        for name, value in changes.items():
            if value is DROP:
                fields.pop(name, None)
            else:
                fields[name] = value
    signer = draw(st.sampled_from([issuer, issuer, issuer, "other", "none"]))
    return sign(header, payload, SIGNERS[signer])


def json_part(token: str, index: int) -> Any:
    segment = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@given(signed_tokens())
@example(sign({"alg": "ES256", "kid": "ec-1"}, {"iss": IDP, "aud": AUDIENCE}, SIGNERS["idp"]))
@example(
    sign(
        {"alg": "ES256", "kid": "ec-1"},
        {"iss": IDP, "aud": AUDIENCE, "exp": int(NOW) + 60, "sub": "a\r\nX-Admin: yes"},
        SIGNERS["idp"],
    )
)
def test_a_signed_token_is_admitted_only_when_the_policy_holds(token: str) -> None:
    result = admitted(token)
    if isinstance(result, TokenError):
        assert isinstance(result.failure, Failure)
        return
    header, payload = json_part(token, 0), json_part(token, 1)
    assert "crit" not in header
    assert payload["iss"] in (IDP, OWN)
    assert header["alg"] == ("ES256" if payload["iss"] == IDP else "EdDSA")
    assert payload["aud"] == AUDIENCE or (
        isinstance(payload["aud"], list) and AUDIENCE in payload["aud"]
    )
    assert payload["exp"] + LEEWAY > NOW
    assert payload.get("nbf", NOW) <= NOW + LEEWAY
    assert payload.get("iat", NOW) <= NOW + LEEWAY
    assert payload["exp"] - payload.get("iat", NOW) <= 86400
    assert payload.get("sid") != "revoked-sid"


# The claims that become identity headers (and "profile", checked as one), nothing else changed.
IDENTITY_CLAIMS = {name: CLAIMS[name] for name in ("sub", "scope", "groups", "profile")}


@given(st.one_of(signed_tokens(), signed_tokens(IDENTITY_CLAIMS)))
@example(
    sign(
        {"alg": "ES256", "kid": "ec-1"},
        {"iss": IDP, "aud": AUDIENCE, "exp": int(NOW) + 60, "sub": "a\r\nX-Admin: yes"},
        SIGNERS["idp"],
    )
)
@example(
    sign(
        {"alg": "ES256", "kid": "ec-1"},
        {"iss": IDP, "aud": AUDIENCE, "exp": int(NOW) + 60, "groups": ["a", {"b\n": 1}]},
        SIGNERS["idp"],
    )
)
def test_an_admitted_tokens_identity_headers_hold_no_control_character(token: str) -> None:
    result = admitted(token)
    if isinstance(result, CachedToken):
        for name, value in result.identity:
            assert name in {n for n, _ in IDENTITY}
            assert not _CONTROL_BYTES.search(value), (name, value)
            assert not _CONTROL_CHARS.search(value.decode("utf-8")), (name, value)
