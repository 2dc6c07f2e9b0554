"""Single sign-on against a real OpenID provider, with a scripted browser (httpx + cookie jar)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.tokenservice.oidc_flow import cookie_name
from tests.oidc_provider import provider_login, provider_logout
from tests.tokenservice.conftest_oidc import Sso, sso_site
from tests.waiting import eventually


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sso]:
    with sso_site(tmp_path_factory.mktemp("sso")) as site:
        yield site


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def whoami(sso: Sso, http: httpx.Client) -> httpx.Response:
    return http.get(f"{sso.url}/api/whoami")


def test_the_start_redirects_with_code_pkce_state_and_nonce(sso: Sso, http: httpx.Client) -> None:
    start = http.get(f"{sso.url}/auth/oidc/corp/start", params={"next": "/api/whoami"})
    assert start.status_code == 302
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [f"{sso.url}/auth/oidc/corp/callback"]
    assert len(query["state"][0]) >= 43 and len(query["nonce"][0]) >= 43
    cookie = start.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=600" in cookie


def test_a_sign_in_creates_the_gateway_session_with_mapped_scopes(
    sso: Sso, http: httpx.Client
) -> None:
    answer = sso.sign_in(http, "alice")
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/api/whoami"
    assert "gw_refresh" in http.cookies and "gw_access" in http.cookies
    me = whoami(sso, http).json()
    assert me["subject"] == "alice"
    assert me["scopes"] == "orders:read orders:write"


def test_unmapped_groups_are_dropped(sso: Sso, http: httpx.Client) -> None:
    assert sso.sign_in(http, "bob").status_code == 303
    assert whoami(sso, http).json()["scopes"] == "orders:read"


def test_two_flows_at_once_both_complete(sso: Sso, http: httpx.Client) -> None:
    first = http.get(f"{sso.url}/auth/oidc/corp/start", params={"next": "/one"})
    second = http.get(f"{sso.url}/auth/oidc/corp/start", params={"next": "/two"})
    back_first = provider_login(http, first.headers["location"], "alice")
    back_second = provider_login(http, second.headers["location"], "alice")
    assert http.get(back_second).headers["location"] == "/two"
    assert http.get(back_first).headers["location"] == "/one"


def test_a_tampered_state_is_refused(sso: Sso, http: httpx.Client) -> None:
    start = http.get(f"{sso.url}/auth/oidc/corp/start")
    callback = provider_login(http, start.headers["location"], "alice")
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = query["state"][:-2] + "xx"
    answer = http.get(f"{sso.url}{parts.path}?{urlencode(query)}")
    assert answer.status_code == 400
    assert "invalid_request" in answer.text
    assert "gw_refresh" not in http.cookies


def test_a_state_that_is_not_ascii_is_refused_not_a_500(sso: Sso, http: httpx.Client) -> None:
    # The flow cookie's name is not sealed: renamed for another state, it is still opened.
    http.get(f"{sso.url}/auth/oidc/corp/start")
    (value,) = [v for k, v in http.cookies.items() if k.startswith("gw_oidc_")]
    answer = httpx.get(
        f"{sso.url}/auth/oidc/corp/callback?state=%C3%A9&code=c",
        headers={"cookie": f"{cookie_name('é')}={value}"},
    )
    assert answer.status_code == 400
    assert "invalid_request" in answer.text


def test_a_provider_error_without_the_browsers_flow_puts_no_words_on_the_page(sso: Sso) -> None:
    # A link anyone could send: the gateway's own origin must not show its text.
    words = "Your account is locked; call +1 555 0100"
    answer = httpx.get(
        f"{sso.url}/auth/oidc/corp/callback",
        params={"state": "s", "error": "access_denied", "error_description": words},
    )
    assert answer.status_code == 400
    assert "call +1 555 0100" not in answer.text


def test_a_replayed_callback_is_refused(sso: Sso, http: httpx.Client) -> None:
    start = http.get(f"{sso.url}/auth/oidc/corp/start")
    callback = provider_login(http, start.headers["location"], "alice")
    flow_cookies = {k: v for k, v in http.cookies.items() if k.startswith("gw_oidc_")}
    assert http.get(callback).status_code == 303
    with httpx.Client(timeout=10, cookies=flow_cookies) as thief:
        replay = thief.get(callback)
    assert replay.status_code == 400
    assert "gw_refresh" not in replay.headers.get("set-cookie", "")


def test_a_callback_without_the_flow_cookie_is_refused(sso: Sso, http: httpx.Client) -> None:
    start = http.get(f"{sso.url}/auth/oidc/corp/start")
    callback = provider_login(http, start.headers["location"], "alice")
    with httpx.Client(timeout=10) as other_browser:
        assert other_browser.get(callback).status_code == 400


def test_a_wrong_nonce_is_refused(sso: Sso, http: httpx.Client) -> None:
    start = http.get(f"{sso.url}/auth/oidc/corp/start")
    parts = urlsplit(start.headers["location"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["nonce"] = "a-nonce-the-gateway-never-made"
    tampered = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"
    answer = http.get(provider_login(http, tampered, "alice"))
    assert answer.status_code == 401
    assert "invalid_grant" in answer.text and "nonce" in answer.text


def test_require_refuses_a_user(sso: Sso, http: httpx.Client) -> None:
    answer = sso.sign_in(http, "mallory", name="strict")
    assert answer.status_code == 403
    assert "forbidden" in answer.text
    assert "gw_refresh" not in http.cookies


def test_require_lets_a_matching_user_in(sso: Sso, http: httpx.Client) -> None:
    assert sso.sign_in(http, "alice", name="strict").status_code == 303


def test_the_providers_error_is_shown_on_the_sign_in_page(sso: Sso, http: httpx.Client) -> None:
    start = http.get(f"{sso.url}/auth/oidc/corp/start")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    answer = http.get(
        f"{sso.url}/auth/oidc/corp/callback",
        params={"error": "access_denied", "error_description": "the user said no", "state": state},
    )
    assert answer.status_code == 401
    assert "access_denied" in answer.text and "the user said no" in answer.text


def test_refresh_rotates_and_logout_ends_an_sso_session(sso: Sso, http: httpx.Client) -> None:
    assert sso.sign_in(http, "alice").status_code == 303
    first = http.cookies["gw_refresh"]
    refreshed = http.post(f"{sso.url}/auth/refresh", headers={"origin": sso.url})
    assert refreshed.status_code == 200
    assert http.cookies["gw_refresh"] != first
    token = refreshed.json()["access_token"]
    assert http.post(f"{sso.url}/auth/logout", headers={"origin": sso.url}).status_code == 204

    def refused() -> httpx.Response:
        answer = httpx.get(f"{sso.url}/api/whoami", headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == 401
        return answer

    eventually(refused, timeout=2)


def test_backchannel_logout_from_the_provider_ends_the_session(
    sso: Sso, http: httpx.Client
) -> None:
    assert sso.sign_in(http, "alice").status_code == 303
    access = http.cookies["gw_access"]
    assert whoami(sso, http).status_code == 200
    provider_logout(http, sso.provider.issuer)

    def refused() -> httpx.Response:
        answer = httpx.get(f"{sso.url}/api/whoami", headers={"authorization": f"Bearer {access}"})
        assert answer.status_code == 401
        return answer

    eventually(refused, timeout=1.5)
    assert http.post(f"{sso.url}/auth/refresh", headers={"origin": sso.url}).status_code == 401


async def test_backchannel_logout_closes_the_sessions_live_websocket(sso: Sso) -> None:
    with httpx.Client() as http:
        assert sso.sign_in(http, "alice").status_code == 303
        cookie = {"Cookie": f"gw_access={http.cookies['gw_access']}", "Origin": sso.url}
        live = sso.url.replace("http://", "ws://") + "/api/live/ticker"
        async with connect(live, additional_headers=cookie) as ws:
            assert str(await ws.recv()).startswith("tick")
            await asyncio.to_thread(provider_logout, http, sso.provider.issuer)
            logged_out = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
        assert time.monotonic() - logged_out < 1.5
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "session revoked")


def test_a_bad_logout_token_is_refused(sso: Sso) -> None:
    answer = httpx.post(
        f"{sso.url}/auth/oidc/corp/backchannel-logout", data={"logout_token": "e30.e30.sig"}
    )
    assert answer.status_code == 400


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"logout_token=a&logout_token=b", 400, id="a repeated logout_token"),
        pytest.param(b"logout_token=" + b"a" * 70_000, 413, id="a body over 64 KiB"),
        pytest.param(b"logout_token=%FF", 400, id="a form that is not UTF-8"),
    ],
)
def test_a_logout_body_that_is_not_one_small_form_field_is_refused(
    sso: Sso, body: bytes, status: int
) -> None:
    answer = httpx.post(
        f"{sso.url}/auth/oidc/corp/backchannel-logout",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == status


def test_readyz_is_ready_once_the_provider_is_discovered(sso: Sso) -> None:
    assert httpx.get(f"{sso.gateway.admin_url}/readyz").status_code == 200


def test_the_sign_in_page_offers_each_provider_with_next(sso: Sso) -> None:
    page = httpx.get(f"{sso.url}/auth/login", params={"next": "/api/orders?x=1"}).text
    assert 'href="/auth/oidc/corp/start?next=/api/orders%3Fx%3D1"' in page
    assert "Sign in with strict" in page
    assert 'name="password"' not in page  # no users section: no password form


def test_a_navigation_without_a_session_leads_to_the_sign_in_page(sso: Sso) -> None:
    answer = httpx.get(f"{sso.url}/api/whoami", headers={"accept": "text/html"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/auth/login?next=")


def test_next_outside_the_origin_becomes_the_root(sso: Sso, http: httpx.Client) -> None:
    start = http.get(f"{sso.url}/auth/oidc/corp/start", params={"next": "//evil.example/x"})
    callback = provider_login(http, start.headers["location"], "alice")
    assert http.get(callback).headers["location"] == "/"


def test_password_sign_in_is_off_without_users(sso: Sso) -> None:
    answer = httpx.post(
        f"{sso.url}/auth/login",
        json={"username": "alice", "password": "x"},
        headers={"origin": sso.url},
    )
    assert answer.status_code == 404


def test_an_answer_naming_another_issuer_is_refused(sso: Sso, http: httpx.Client) -> None:
    start = http.get(f"{sso.url}/auth/oidc/corp/start")
    callback = provider_login(http, start.headers["location"], "alice")
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["iss"] == sso.provider.issuer  # the provider sends it (RFC 9207)
    query["iss"] = "https://mix-up.example"
    answer = http.get(f"{sso.url}{parts.path}?{urlencode(query)}")
    assert answer.status_code == 400
    assert "gw_refresh" not in http.cookies


def test_an_unknown_provider_is_not_found(sso: Sso) -> None:
    assert httpx.get(f"{sso.url}/auth/oidc/nobody/start").status_code == 404


def test_backchannel_logout_is_not_found_where_it_is_off(sso: Sso) -> None:
    answer = httpx.post(
        f"{sso.url}/auth/oidc/strict/backchannel-logout", data={"logout_token": "x"}
    )
    assert answer.status_code == 404
