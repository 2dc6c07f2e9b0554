"""Access control on proxied routes, end to end (docs/behaviour.md#answers-on-a-route)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from tests.proxy.conftest import Stack, raw_request
from tests.tokens import SigningKey


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}".strip()}


def _assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(
        'Bearer realm="gateway", error="invalid_token", error_description="'
    )
    assert response.json()["error"] == "invalid_token"


def test_no_token_on_required_route_is_401_without_error_attribute(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/admin")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="gateway"'
    assert response.json()["error"] == "unauthorized"


def test_basic_scheme_counts_as_no_token(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/admin", headers={"Authorization": "Basic YTpi"})
    assert response.headers["www-authenticate"] == 'Bearer realm="gateway"'


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_in_any_case_is_accepted(stack: Stack, scheme: str) -> None:
    response = httpx.get(
        f"{stack.url}/admin", headers={"Authorization": f"{scheme} {stack.key.token()}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_valid_tokens_of_each_algorithm_pass(stack: Stack, algorithm: str) -> None:
    key = stack.key if algorithm == "EdDSA" else stack.other_keys[algorithm]
    response = httpx.get(f"{stack.url}/admin", headers=_bearer(key.token()))
    assert response.status_code == 200, response.text


def _unsigned(header: dict[str, object], payload: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


def _bad_tokens(key: SigningKey) -> list[object]:
    now = int(time.time())
    good = key.token()
    head, body, sig = good.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    other = SigningKey.__new__(SigningKey)
    other.algorithm, other.kid = "EdDSA", key.kid
    from tests.tokens import new_private_key

    other.private = new_private_key("EdDSA")
    hs256_token = _hs256_with_public_key(key, now)
    return [
        pytest.param(key.token(ttl=-120), id="expired"),
        pytest.param(key.token(nbf=now + 600), id="nbf in the future"),
        pytest.param(key.token(aud="other"), id="wrong aud"),
        pytest.param(key.token(iss="http://evil.test"), id="wrong iss"),
        pytest.param(key.token(exp=None), id="missing exp"),
        pytest.param(f"{head}.{body}.{flipped}", id="bad signature"),
        pytest.param(other.token(), id="signed by another key with the same kid"),
        pytest.param(
            _unsigned(
                {"alg": "none", "typ": "at+jwt", "kid": key.kid},
                {"iss": "http://gateway.test", "aud": "api", "sub": "x", "exp": now + 60},
            ),
            id="alg none",
        ),
        pytest.param(hs256_token, id="HS256 signed with the public key PEM"),
        pytest.param(key.token(header={"kid": "unknown-kid"}), id="unknown kid"),
        pytest.param(key.token(header={"kid": "../../etc/passwd"}), id="kid path traversal"),
        pytest.param(
            other.token(header={"jku": "http://127.0.0.1:1/jwks.json"}), id="jku pointing elsewhere"
        ),
        pytest.param(key.token(header={"typ": "JWT"}), id="own issuer without at+jwt typ"),
        pytest.param(key.token(header={"crit": ["exp"]}), id="crit header"),
        pytest.param(key.token(sub="alice\r\nX-Injected: 1"), id="CRLF in an identity claim"),
        pytest.param("", id="empty"),
        pytest.param("onesegment", id="one segment"),
        pytest.param("a.b.c", id="three garbage segments"),
        pytest.param("x" * 8000, id="long garbage"),
    ]


def _hs256_with_public_key(key: SigningKey, now: int) -> str:
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    payload = {
        "iss": "http://gateway.test",
        "aud": "api",
        "sub": "mallory",
        "exp": now + 60,
        "iat": now,
    }

    def part(value: dict[str, object]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signing_input = part(header) + b"." + part(payload)
    signature = hmac.new(key.public_pem(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


def test_every_bad_token_is_401_invalid_token(stack: Stack) -> None:
    for param in _bad_tokens(stack.key):
        token = param.values[0]  # type: ignore[attr-defined]
        response = httpx.get(f"{stack.url}/admin", headers=_bearer(token))
        assert response.status_code == 401, (param.id, response.text)  # type: ignore[attr-defined]
        _assert_invalid_token(response)
        assert token not in response.text or token == ""


def test_token_far_past_the_header_limit_is_431(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/admin", headers=_bearer("x" * 40000))
    assert response.status_code == 431


def test_token_in_query_string_is_not_accepted(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/admin?access_token={stack.key.token()}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="gateway"'


def test_bearer_header_plus_query_token_is_400(stack: Stack) -> None:
    token = stack.key.token()
    response = httpx.get(f"{stack.url}/admin?access_token={token}", headers=_bearer(token))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_two_authorization_headers_are_400(stack: Stack) -> None:
    token = stack.key.token()
    response = httpx.get(
        f"{stack.url}/admin",
        headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
    )
    assert response.status_code == 400


def test_missing_scope_is_403_insufficient_scope_listing_all_route_scopes(stack: Stack) -> None:
    response = httpx.get(
        f"{stack.url}/orders", headers=_bearer(stack.key.token(scope="orders:read"))
    )
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert 'scope="orders:read orders:list"' in response.headers["www-authenticate"]


def test_all_scopes_present_passes(stack: Stack) -> None:
    token = stack.key.token(scope="orders:list orders:read other")
    assert httpx.get(f"{stack.url}/orders", headers=_bearer(token)).status_code == 200


def test_scp_list_is_read_as_scopes(stack: Stack) -> None:
    token = stack.key.token(scope=None, scp=["orders:read", "orders:list"])
    assert httpx.get(f"{stack.url}/orders", headers=_bearer(token)).status_code == 200


def test_claim_mismatch_is_403_forbidden(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/tenant", headers=_bearer(stack.key.token(tenant="other")))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_claim_match_passes(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/tenant", headers=_bearer(stack.key.token(tenant="acme")))
    assert response.status_code == 200


def test_optional_route_forwards_anonymous_requests_without_identity(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/optional")
    assert response.status_code == 200
    assert "x-auth-subject" not in dict(response.json()["headers"])


def test_optional_route_rejects_a_bad_token(stack: Stack) -> None:
    _assert_invalid_token(httpx.get(f"{stack.url}/optional", headers=_bearer("a.b.c")))


def test_identity_headers_arrive_from_claims(stack: Stack) -> None:
    token = stack.key.token(sub="bob", scope="orders:read orders:list")
    headers = dict(httpx.get(f"{stack.url}/echo", headers=_bearer(token)).json()["headers"])
    assert headers["x-auth-subject"] == "bob"
    assert headers["x-auth-scopes"] == "orders:read orders:list"


@pytest.mark.parametrize("route", ["/public/x", "/optional", "/echo"])
@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param([("X-Auth-Subject", "root")], id="canonical"),
        pytest.param([("x-auth-subject", "root")], id="lower case"),
        pytest.param([("X-AUTH-SUBJECT", "root")], id="upper case"),
        pytest.param([("X-Auth-Subject", "root"), ("x-auth-subject", "admin")], id="sent twice"),
        pytest.param([("X_Auth_Subject", "root")], id="underscores"),
    ],
)
def test_client_identity_headers_never_reach_the_upstream(
    stack: Stack, route: str, spelling: list[tuple[str, str]]
) -> None:
    headers = list(spelling)
    if route == "/echo":
        headers.append(("Authorization", f"Bearer {stack.key.token(sub='alice')}"))
    response = httpx.get(f"{stack.url}{route}", headers=headers)
    assert response.status_code == 200
    seen = response.json()["headers"]
    values = [v for k, v in seen if k.replace("_", "-") == "x-auth-subject"]
    assert values == (["alice"] if route == "/echo" else [])


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/public/../admin", id="dot dot"),
        pytest.param("/public/%2e%2e/admin", id="encoded dot dot"),
        pytest.param("/public/%2E%2E/admin", id="upper encoded dot dot"),
        pytest.param("//admin", id="double slash"),
        pytest.param("/public/./../admin", id="dot then dot dot"),
    ],
)
def test_path_tricks_toward_a_protected_route_require_auth(stack: Stack, path: str) -> None:
    before = len(stack.upstream.seen)
    status, body = raw_request(stack.gateway.port, path)
    assert status == 401
    assert json.loads(body)["error"] == "unauthorized"
    assert len(stack.upstream.seen) == before


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/public/..%2Fadmin", id="encoded slash"),
        pytest.param("/public/%2fadmin", id="lower encoded slash"),
        pytest.param("/public\\..\\admin", id="backslash"),
        pytest.param("/public/%5cadmin", id="encoded backslash"),
        pytest.param("/public/%00", id="encoded NUL"),
        pytest.param("/public/a;b", id="path parameter"),
    ],
)
def test_ambiguous_paths_are_400(stack: Stack, path: str) -> None:
    status, body = raw_request(stack.gateway.port, path)
    assert status == 400
    assert json.loads(body)["error"] == "invalid_request"


def test_normalised_path_is_what_goes_upstream(stack: Stack) -> None:
    _status, body = raw_request(stack.gateway.port, "/public/a/./b/../c//d/%7Euser")
    assert json.loads(body)["raw_path"] == "/public/a/c/d/~user"


def test_double_slash_url_cannot_change_the_upstream_host(stack: Stack) -> None:
    status, body = raw_request(stack.gateway.port, "/public//evil.example/x")
    assert status == 200
    assert json.loads(body)["raw_path"] == "/public/evil.example/x"
