"""The refresh cookie's attributes, and the optional access cookie (docs/behaviour.md#refresh-tokens-and-cookies)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tokenservice.conftest import (
    CLIENT,
    USERS,
    Service,
    config_text,
    cookies_set,
    launch,
    login,
    logout,
    refresh,
    refresh_cookie,
)


def test_the_refresh_cookie_is_httponly_strict_and_scoped_to_auth(service: Service) -> None:
    cookie = cookies_set(login(service.url, "alice", USERS["alice"][0]))["gw_refresh"]
    assert "httponly" in cookie
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/auth"
    assert "secure" not in cookie  # public_url is plain http here


def test_the_refresh_cookie_lives_as_long_as_the_session(service: Service) -> None:
    logged_in = login(service.url, "alice", USERS["alice"][0])
    assert cookies_set(logged_in)["gw_refresh"]["max-age"] == "3600"  # refresh_ttl: 1h
    rotated = refresh(service.url, refresh_cookie(logged_in))
    assert 3590 <= int(cookies_set(rotated)["gw_refresh"]["max-age"]) <= 3600


@pytest.fixture(scope="module")
def browser_service(
    tmp_path_factory: pytest.TempPathFactory, upstream_port: int
) -> Iterator[Service]:
    """A gateway behind https, with Lax cookies and the access token as a cookie too."""
    running = launch(
        tmp_path_factory.mktemp("browser"),
        config_text(
            upstream_port,
            public_url="https://gateway.test",
            cookie={"name": "gw_refresh", "path": "/auth", "same_site": "lax"},
            access_cookie={"name": "gw_access"},
        ),
    )
    yield running
    running.stop()


def test_the_cookies_are_secure_when_public_url_is_https(browser_service: Service) -> None:
    cookies = cookies_set(login(browser_service.url, "alice", USERS["alice"][0]))
    assert "secure" in cookies["gw_refresh"] and "secure" in cookies["gw_access"]


def test_same_site_lax_is_used_when_configured(browser_service: Service) -> None:
    cookie = cookies_set(login(browser_service.url, "alice", USERS["alice"][0]))["gw_refresh"]
    assert cookie["samesite"] == "Lax"


def test_the_access_cookie_holds_the_access_token_for_its_lifetime(
    browser_service: Service,
) -> None:
    logged_in = login(browser_service.url, "alice", USERS["alice"][0])
    access = cookies_set(logged_in)["gw_access"]
    assert access["value"] == logged_in.json()["access_token"]
    assert access["path"] == "/" and access["max-age"] == "300" and "httponly" in access


def test_the_access_cookie_is_accepted_by_the_proxy(browser_service: Service) -> None:
    token = login(browser_service.url, "alice", USERS["alice"][0]).json()["access_token"]
    answer = CLIENT.get(f"{browser_service.url}/orders/1", headers={"cookie": f"gw_access={token}"})
    assert answer.status_code == 200


def test_logout_clears_both_cookies(browser_service: Service) -> None:
    logged_in = login(browser_service.url, "alice", USERS["alice"][0])
    cleared = cookies_set(logout(browser_service.url, refresh_cookie(logged_in)))
    assert cleared["gw_access"]["max-age"] == "0" and cleared["gw_access"]["path"] == "/"
    assert cleared["gw_refresh"]["max-age"] == "0" and cleared["gw_refresh"]["path"] == "/auth"
