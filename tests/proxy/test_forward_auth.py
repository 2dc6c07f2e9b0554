"""``/auth/verify`` decisions in process: who may ask, how the original request is read, and
that a spoofed or tricked URI is judged exactly as the proxied request would be."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest

from gateway.auth.keys import KeyRing
from gateway.config import parse_config
from gateway.http.pool import UpstreamPool
from gateway.observability import AccessRecord
from gateway.proxy.answers import Allowed, Answer, Refusal
from gateway.proxy.forward_auth import verify
from gateway.proxy.runtime import Runtime, build_runtime
from gateway.proxy.stages import scan_head
from tests.configs import config_yaml, route
from tests.tokens import ISSUER, SigningKey

OWN = "https://gateway.test"
APP = "https://app.test"
PROXY = "10.0.0.7"
UPSTREAM = "http://127.0.0.1:9"
CONFIG = config_yaml(
    server={"public_url": OWN, "trusted_proxies": ["10.0.0.0/24"]},
    tokens={"issuer": ISSUER, "keys": "./keys", "access_cookie": {"name": "gw_access"}},
    cors={"allow_origins": [APP]},
    identity_assertion={"header": "X-Gateway-Assertion", "ttl": "60s"},
    routes=[
        route("public", "/public", UPSTREAM, auth="public"),
        route("admin", "/admin", UPSTREAM, scopes=["admin"]),
        route("orders", "/orders", UPSTREAM, methods=["GET", "POST"], scopes=["orders:read"]),
        route("quiet", "/quiet", UPSTREAM, identity_assertion=False),
        route("maybe", "/maybe", UPSTREAM, auth="optional"),
    ],
)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[tuple[Runtime, SigningKey]]:
    key = SigningKey(tmp_path / "keys", "EdDSA")
    config = parse_config(CONFIG, tmp_path / "routes.yaml", {})
    pool = UpstreamPool()
    try:
        keyring = KeyRing.load(tmp_path / "keys")
        yield build_runtime(config, keyring=keyring, jwks={}, pool=pool), key
    finally:
        pool.close()


async def decide(
    rt: Runtime, *headers: tuple[str, str], peer: str = PROXY, token: str | None = None
) -> Answer:
    raw = [(b"host", b"app.test"), *((n.lower().encode(), v.encode()) for n, v in headers)]
    if token is not None:
        raw.append((b"authorization", f"Bearer {token}".encode()))
    record = AccessRecord(method="GET", path="/auth/verify", client=peer)
    return await verify(rt, scan_head(raw), peer, record)


def traefik(method: str, uri: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return ("X-Forwarded-Method", method), ("X-Forwarded-Uri", uri)


def nginx(method: str, uri: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return ("X-Original-Method", method), ("X-Original-URI", uri)


def status(answer: Answer) -> int:
    return answer.status


# -- who may ask, and how the request is named --------------------------------------------------


async def test_a_peer_outside_trusted_proxies_is_refused_403(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, _ = runtime
    answer = await decide(rt, *traefik("GET", "/public"), peer="192.0.2.9")
    assert isinstance(answer, Refusal) and (answer.status, answer.code) == (403, "forbidden")


@pytest.mark.parametrize("convention", [traefik, nginx], ids=["X-Forwarded-*", "X-Original-*"])
async def test_either_convention_names_the_original_request(
    runtime: tuple[Runtime, SigningKey], convention: object
) -> None:
    rt, key = runtime
    assert callable(convention)
    answer = await decide(rt, *convention("GET", "/orders/7"), token=key.token())
    assert isinstance(answer, Allowed)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param((), id="no original request"),
        pytest.param((("X-Forwarded-Uri", "/public"),), id="uri without method"),
        pytest.param((("X-Original-Method", "GET"),), id="method without uri"),
        pytest.param(
            (("X-Forwarded-Method", "GET"), ("X-Original-URI", "/public")), id="mixed conventions"
        ),
        pytest.param((*traefik("GET", "/public"), *nginx("GET", "/admin")), id="both conventions"),
        pytest.param(
            (*traefik("GET", "/public"), ("X-Forwarded-Uri", "/admin")), id="uri sent twice"
        ),
        pytest.param(
            (*nginx("GET", "/public"), ("X-Original-Method", "POST")), id="method sent twice"
        ),
        pytest.param(traefik("get", "/public"), id="lower-case method"),
        pytest.param(traefik("GET /admin", "/public"), id="method with a space"),
        pytest.param(traefik("GET", "http://app.test/admin"), id="absolute uri"),
        pytest.param(traefik("GET", "app.test/public"), id="no leading slash"),
        pytest.param(traefik("GET", "*"), id="asterisk"),
    ],
)
async def test_an_unclear_original_request_is_400(
    runtime: tuple[Runtime, SigningKey], headers: tuple[tuple[str, str], ...]
) -> None:
    rt, key = runtime
    answer = await decide(rt, *headers, token=key.token(scope="admin orders:read"))
    assert isinstance(answer, Refusal) and answer.status == 400


# -- path tricks are judged as the proxy judges them --------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("/public/..%2Fadmin", id="encoded slash"),
        pytest.param("/public/%2e%2e%2Fadmin", id="encoded dots and slash"),
        pytest.param("/public/..%5Cadmin", id="encoded backslash"),
        pytest.param("/public\\..\\admin", id="backslash"),
        pytest.param("/admin;/public", id="path parameter"),
        pytest.param("/public/..;/admin", id="dot segment with parameter"),
        pytest.param("/public/%00/../admin", id="encoded NUL"),
    ],
)
async def test_an_ambiguous_path_is_refused_400_never_allowed(
    runtime: tuple[Runtime, SigningKey], uri: str
) -> None:
    rt, key = runtime
    answer = await decide(rt, *traefik("GET", uri), token=key.token(scope="orders:read"))
    assert isinstance(answer, Refusal) and answer.status == 400


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("/public/../admin", id="dot segments"),
        pytest.param("/public/%2e%2e/admin", id="encoded dot segments"),
        pytest.param("//public/../admin/", id="double slash"),
        pytest.param("/%61dmin", id="encoded unreserved letter"),
        pytest.param("/public/./../admin?x=/public", id="query naming another path"),
    ],
)
async def test_a_disguised_path_is_judged_as_the_route_it_normalises_to(
    runtime: tuple[Runtime, SigningKey], uri: str
) -> None:
    rt, key = runtime
    answer = await decide(rt, *traefik("GET", uri), token=key.token(scope="orders:read"))
    assert isinstance(answer, Refusal)
    assert (answer.status, answer.code) == (403, "insufficient_scope")


async def test_a_fragment_in_the_uri_is_no_way_around_a_route(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    answer = await decide(rt, *traefik("GET", "/admin#/public"), token=key.token())
    assert isinstance(answer, Refusal) and answer.status == 404


async def test_a_spoofed_uri_from_a_client_of_a_trusting_proxy_is_judged_on_its_own_route(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    # The proxy names /admin; a token that only reaches /orders gets no pass for it.
    answer = await decide(rt, *nginx("GET", "/admin/users"), token=key.token(scope="orders:read"))
    assert isinstance(answer, Refusal) and answer.status == 403


# -- the answers --------------------------------------------------------------------------------


async def test_a_good_token_gets_200_with_identity_headers_and_an_assertion_for_the_route(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    answer = await decide(rt, *traefik("GET", "/orders/7?x=1"), token=key.token(sid="s-1"))
    assert isinstance(answer, Allowed)
    headers = dict(answer.headers)
    assert headers[b"x-auth-subject"] == b"alice"
    assert headers[b"x-auth-scopes"] == b"orders:read"
    claims = jwt.decode(
        headers[b"x-gateway-assertion"],
        key.private.public_key(),
        algorithms=["EdDSA"],
        audience="orders",
        issuer=ISSUER,
    )
    assert (claims["sub"], claims["sid"], claims["scope"]) == ("alice", "s-1", "orders:read")


async def test_a_route_with_identity_assertion_false_gets_no_assertion(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    answer = await decide(rt, *traefik("GET", "/quiet"), token=key.token())
    assert isinstance(answer, Allowed)
    assert [name for name, _ in answer.headers] == [b"x-auth-subject", b"x-auth-scopes"]


async def test_a_public_route_is_allowed_without_identity(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, _ = runtime
    answer = await decide(rt, *traefik("POST", "/public/form"))
    assert isinstance(answer, Allowed) and answer.headers == ()


async def test_no_token_is_401_with_the_bearer_challenge(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, _ = runtime
    answer = await decide(rt, *nginx("GET", "/orders"))
    assert isinstance(answer, Refusal)
    assert (answer.status, answer.code) == (401, "unauthorized")
    assert dict(answer.headers)[b"www-authenticate"] == b'Bearer realm="gateway"'


async def test_a_bad_token_is_401_invalid_token(runtime: tuple[Runtime, SigningKey]) -> None:
    rt, _ = runtime
    answer = await decide(rt, *nginx("GET", "/orders"), token="not.a.token")
    assert isinstance(answer, Refusal) and (answer.status, answer.code) == (401, "invalid_token")


async def test_a_missing_scope_is_403_naming_the_scopes(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    answer = await decide(rt, *nginx("GET", "/admin"), token=key.token())
    assert isinstance(answer, Refusal) and answer.status == 403
    assert b'scope="admin"' in dict(answer.headers)[b"www-authenticate"]


async def test_no_route_is_404_and_a_wrong_method_405_with_allow(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    assert status(await decide(rt, *nginx("GET", "/nowhere"), token=key.token())) == 404
    answer = await decide(rt, *nginx("DELETE", "/orders/7"), token=key.token())
    assert isinstance(answer, Refusal) and answer.status == 405
    assert dict(answer.headers)[b"allow"] == b"GET, HEAD, POST"


async def test_the_gateways_own_paths_are_no_route(runtime: tuple[Runtime, SigningKey]) -> None:
    rt, key = runtime
    assert status(await decide(rt, *nginx("GET", "/auth/verify"), token=key.token())) == 404


async def test_a_refused_navigation_is_401_with_the_sign_in_location(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, _ = runtime
    answer = await decide(rt, *nginx("GET", "/orders/7?a=1"), ("Accept", "text/html"))
    assert isinstance(answer, Refusal) and answer.status == 401
    assert dict(answer.headers)[b"location"] == (
        f"{OWN}/auth/login?next=%2Forders%2F7%3Fa%3D1".encode()
    )


async def test_a_refused_api_call_gets_no_sign_in_location(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, _ = runtime
    answer = await decide(rt, *nginx("GET", "/orders/7"), ("Accept", "application/json"))
    assert isinstance(answer, Refusal) and b"location" not in dict(answer.headers)


async def test_the_access_cookie_of_the_verify_request_is_the_token(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    answer = await decide(rt, *nginx("GET", "/orders"), ("Cookie", f"gw_access={key.token()}"))
    assert isinstance(answer, Allowed)


async def test_a_cookie_authenticated_cross_site_write_is_refused(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    answer = await decide(
        rt,
        *nginx("POST", "/orders"),
        ("Cookie", f"gw_access={key.token()}"),
        ("Origin", "https://evil.test"),
    )
    assert isinstance(answer, Refusal) and (answer.status, answer.code) == (403, "forbidden")


async def test_a_preflight_from_an_allowed_origin_is_let_through_without_a_token(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, _ = runtime
    preflight = (("Origin", APP), ("Access-Control-Request-Method", "POST"))
    answer = await decide(rt, *traefik("OPTIONS", "/orders"), *preflight)
    assert isinstance(answer, Allowed) and answer.headers == ()
    other = (("Origin", "https://evil.test"), ("Access-Control-Request-Method", "POST"))
    assert status(await decide(rt, *traefik("OPTIONS", "/orders"), *other)) == 403


async def test_an_anonymous_request_on_an_optional_route_is_allowed_without_identity(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, _ = runtime
    answer = await decide(rt, *traefik("GET", "/maybe"))
    assert isinstance(answer, Allowed) and answer.headers == ()
