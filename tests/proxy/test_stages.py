"""The front door's stages, each on its own: no server, no socket, a runtime built in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.auth.keys import KeyRing
from gateway.auth.token_cache import CachedToken
from gateway.config import parse_config
from gateway.http.pool import UpstreamPool
from gateway.observability import AccessRecord
from gateway.proxy.answers import PreflightAllowed, Refusal, SignInRedirect
from gateway.proxy.cors import CorsPolicy
from gateway.proxy.ratelimit import MemoryRateLimiter
from gateway.proxy.routing import RouteMatch, RouteTable
from gateway.proxy.runtime import Runtime, build_runtime
from gateway.proxy.stages import (
    ANONYMOUS,
    MAX_HEADER_BYTES,
    answer_preflight,
    authenticate,
    check_body,
    check_framing,
    check_rate_limit,
    choose_route,
    scan_head,
)
from tests.configs import build_config, config_yaml, route
from tests.tokens import ISSUER, SigningKey

OWN = "http://gateway.test"
APP = "http://app.test"
UPSTREAM = "http://127.0.0.1:9"
CONFIG = config_yaml(
    server={"public_url": OWN},
    tokens={"issuer": ISSUER, "keys": "./keys", "access_cookie": {"name": "gw_access"}},
    cors={"allow_origins": [APP], "allow_credentials": True},
    routes=[
        route(
            "orders",
            "/orders",
            UPSTREAM,
            methods=["GET", "POST"],
            scopes=["orders:read"],
            max_body=100,
        ),
        route("open", "/open", UPSTREAM, auth="public"),
        route("maybe", "/maybe", UPSTREAM, auth="optional"),
    ],
)


def head(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"gateway.test"), *((n.encode(), v.encode()) for n, v in pairs)]


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[tuple[Runtime, SigningKey]]:
    key = SigningKey(tmp_path / "keys", "EdDSA")
    config = parse_config(CONFIG, tmp_path / "routes.yaml", {})
    pool = UpstreamPool()
    try:
        yield (
            build_runtime(config, keyring=KeyRing.load(tmp_path / "keys"), jwks={}, pool=pool),
            key,
        )
    finally:
        pool.close()


def record() -> AccessRecord:
    return AccessRecord(method="GET", path="/", client="192.0.2.1")


# -- scan_head ----------------------------------------------------------------------------------


def test_the_scan_keeps_a_usable_request_id_and_replaces_a_bad_one() -> None:
    assert scan_head(head(("x-request-id", "abc-1"))).request_id == b"abc-1"
    assert scan_head(head(("x-request-id", "x" * 201))).request_id != b"x" * 201
    assert scan_head(head()).request_id  # created when absent


def test_several_origins_give_no_cors_origin_but_are_all_kept_for_the_cross_site_check() -> None:
    scanned = scan_head(head(("origin", APP), ("origin", OWN)))
    assert scanned.origin is None
    assert scanned.origins() == [APP, OWN]


def test_the_scan_notes_a_transfer_coding_other_than_chunked() -> None:
    assert scan_head(head(("transfer-encoding", "gzip, chunked"))).other_coding
    assert not scan_head(head(("transfer-encoding", "chunked"))).other_coding


# -- check_framing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "raw_path", "status"),
    [
        pytest.param(head(("x-big", "a" * MAX_HEADER_BYTES)), b"/", 431, id="headers too large"),
        pytest.param(head(("transfer-encoding", "gzip")), b"/", 501, id="gzip coding"),
        pytest.param(head(("host", "b")), b"/", 400, id="two Host headers"),
        pytest.param(head()[1:], b"/", 400, id="no Host header"),
        pytest.param(head(), b"/a/%2F/b", 400, id="encoded slash"),
    ],
)
def test_framing_refusals(headers: list[tuple[bytes, bytes]], raw_path: bytes, status: int) -> None:
    refusal = check_framing(scan_head(headers), raw_path, allow_params=False)
    assert isinstance(refusal, Refusal) and refusal.status == status


def test_framing_passes_on_the_normalised_path() -> None:
    assert check_framing(scan_head(head()), b"/a/./b//c/../d", allow_params=False) == "/a/b/d"


# -- answer_preflight ---------------------------------------------------------------------------

CORS = CorsPolicy(parse_config(CONFIG, Path("/x/routes.yaml"), {}).cors)
PREFLIGHT = ("access-control-request-method", "POST")


def test_a_request_that_is_no_preflight_passes_on() -> None:
    assert answer_preflight(scan_head(head(("origin", APP))), "OPTIONS", CORS) is None
    assert answer_preflight(scan_head(head(PREFLIGHT)), "OPTIONS", CORS) is None


def test_a_preflight_from_an_allowed_origin_is_answered_204_with_its_headers() -> None:
    answer = answer_preflight(scan_head(head(("origin", APP), PREFLIGHT)), "OPTIONS", CORS)
    assert isinstance(answer, PreflightAllowed)
    assert (b"access-control-allow-origin", APP.encode()) in answer.headers


def test_a_preflight_from_another_origin_is_refused_403() -> None:
    answer = answer_preflight(
        scan_head(head(("origin", "http://evil.test"), PREFLIGHT)), "OPTIONS", CORS
    )
    assert isinstance(answer, Refusal) and (answer.status, answer.code) == (403, "forbidden")


# -- choose_route -------------------------------------------------------------------------------

TABLE = RouteTable(parse_config(CONFIG, Path("/x/routes.yaml"), {}).routes)


def test_no_matching_prefix_is_404() -> None:
    refusal = choose_route(TABLE, "GET", "/nothing")
    assert isinstance(refusal, Refusal) and refusal.status == 404


def test_a_method_the_route_does_not_allow_is_405_with_allow() -> None:
    refusal = choose_route(TABLE, "DELETE", "/orders/1")
    assert isinstance(refusal, Refusal) and refusal.status == 405
    assert dict(refusal.headers)[b"allow"] == b"GET, HEAD, POST"


def test_a_matching_route_passes_on() -> None:
    match = choose_route(TABLE, "GET", "/orders/1")
    assert isinstance(match, RouteMatch) and match.route.name == "orders"


# -- authenticate -------------------------------------------------------------------------------


async def test_a_public_route_needs_no_token(runtime: tuple[Runtime, SigningKey]) -> None:
    rt, _ = runtime
    route = rt.config.routes[1]
    assert (
        await authenticate(rt, route, scan_head(head()), "GET", "/open", b"", record()) is ANONYMOUS
    )


async def test_an_optional_route_passes_on_without_a_token(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, _ = runtime
    route = rt.config.routes[2]
    assert (
        await authenticate(rt, route, scan_head(head()), "GET", "/maybe", b"", record())
        is ANONYMOUS
    )


async def test_no_token_is_401_unauthorized(runtime: tuple[Runtime, SigningKey]) -> None:
    rt, _ = runtime
    answer = await authenticate(
        rt, rt.config.routes[0], scan_head(head()), "GET", "/orders", b"", record()
    )
    assert isinstance(answer, Refusal)
    assert (answer.status, answer.code, answer.reason) == (401, "unauthorized", "missing")


async def test_a_navigation_without_a_token_is_sent_to_sign_in_and_back(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, _ = runtime
    navigation = scan_head(head(("accept", "text/html")))
    answer = await authenticate(
        rt, rt.config.routes[0], navigation, "GET", "/orders/7", b"a=1", record()
    )
    assert isinstance(answer, SignInRedirect)
    assert answer.location == b"/auth/login?next=%2Forders%2F7%3Fa%3D1"


async def test_a_good_token_gives_the_identity_and_names_the_subject(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    token = key.token(sub="fay", scope="orders:read")
    seen = record()
    identity = await authenticate(
        rt,
        rt.config.routes[0],
        scan_head(head(("authorization", f"Bearer {token}"))),
        "GET",
        "/orders",
        b"",
        seen,
    )
    assert isinstance(identity, CachedToken) and (b"x-auth-subject", b"fay") in identity.identity
    assert seen.sub == "fay"


async def test_a_missing_scope_is_403_insufficient_scope(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    token = key.token(scope="orders:write")
    answer = await authenticate(
        rt,
        rt.config.routes[0],
        scan_head(head(("authorization", f"Bearer {token}"))),
        "GET",
        "/orders",
        b"",
        record(),
    )
    assert isinstance(answer, Refusal) and (answer.status, answer.code) == (
        403,
        "insufficient_scope",
    )


async def test_a_cross_site_post_riding_on_the_access_cookie_is_403(
    runtime: tuple[Runtime, SigningKey],
) -> None:
    rt, key = runtime
    cookie = ("cookie", f"gw_access={key.token(scope='orders:read')}")
    answer = await authenticate(
        rt,
        rt.config.routes[0],
        scan_head(head(cookie, ("origin", "http://evil.test"))),
        "POST",
        "/orders",
        b"",
        record(),
    )
    assert isinstance(answer, Refusal) and (answer.status, answer.reason) == (403, "cross_site")


# -- check_rate_limit and check_body ----------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(head(), (False, None), id="no body"),
        pytest.param(head(("content-length", "0")), (False, 0), id="empty body"),
        pytest.param(head(("content-length", "100")), (True, 100), id="exactly max_body"),
        pytest.param(head(("transfer-encoding", "chunked")), (True, None), id="chunked"),
    ],
)
def test_a_body_within_max_body_passes_on(
    headers: list[tuple[bytes, bytes]], expected: tuple[bool, int | None]
) -> None:
    route = TABLE.match("POST", "/orders")
    assert isinstance(route, RouteMatch)
    assert check_body(route.route, scan_head(headers)) == expected


@pytest.mark.parametrize(
    ("length", "status"),
    [pytest.param("101", 413, id="over max_body"), pytest.param("ten", 400, id="not a number")],
)
def test_a_declared_length_is_checked_before_the_upstream(length: str, status: int) -> None:
    route = TABLE.match("POST", "/orders")
    assert isinstance(route, RouteMatch)
    refusal = check_body(route.route, scan_head(head(("content-length", length))))
    assert isinstance(refusal, Refusal) and refusal.status == status


async def test_a_spent_rate_limit_is_429_with_retry_after() -> None:
    limited = build_config(
        routes=[route("r", "/r", UPSTREAM, auth="public", rate_limit="1/min")]
    ).routes[0]
    limiter = MemoryRateLimiter()
    assert await check_rate_limit(limited, record(), limiter) is None
    refusal = await check_rate_limit(limited, record(), limiter)
    assert isinstance(refusal, Refusal) and refusal.status == 429
    assert dict(refusal.headers)[b"retry-after"].isdigit()
