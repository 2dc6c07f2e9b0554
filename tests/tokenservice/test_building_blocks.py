"""The small pure pieces: next paths, origin checks, cookies, users file parsing, passwords."""

from __future__ import annotations

import datetime
import time

import pytest
from argon2 import PasswordHasher

from gateway.config import AccessCookieConfig, CookieConfig, TokensConfig
from gateway.proxy.origins import OriginCheck
from gateway.tokenservice.cookies import SessionCookies, read_cookies
from gateway.tokenservice.pages import render_page, safe_next
from gateway.tokenservice.passwords import PasswordCheck
from gateway.tokenservice.users import parse_users

CHEAP = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("/orders?x=1#top", "/orders?x=1#top", id="path, query and fragment"),
        pytest.param("orders", "/", id="relative path"),
        pytest.param("//evil.example", "/", id="scheme-relative"),
        pytest.param("/\\evil.example", "/", id="backslash"),
        pytest.param("https://evil.example/", "/", id="absolute"),
        pytest.param("/a\r\nSet-Cookie: x=1", "/", id="header injection"),
        pytest.param("/" + "a" * 3000, "/", id="overlong"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_safe_next_keeps_only_local_paths_and_sends_the_rest_to_the_root(
    value: str | None, expected: str | None
) -> None:
    assert safe_next(value) == expected


def test_the_page_escapes_what_it_shows() -> None:
    page = render_page(next_path="/a?b=1&c=2", message="<b>no</b>")
    assert 'value="/a?b=1&amp;c=2"' in page and "&lt;b&gt;no&lt;/b&gt;" in page


CHECK = OriginCheck("http://gateway.test", ["http://app.test"])


@pytest.mark.parametrize(
    ("origins", "sites", "refused"),
    [
        pytest.param([], [], False, id="no headers"),
        pytest.param(["http://gateway.test"], [], False, id="own origin"),
        pytest.param(["HTTP://Gateway.Test"], [], False, id="own origin in capitals"),
        pytest.param(["http://app.test"], ["cross-site"], False, id="CORS origin, cross-site"),
        pytest.param(["null"], [], True, id="null"),
        pytest.param(["https://gateway.test"], [], True, id="other scheme"),
        pytest.param(["http://gateway.test", "http://gateway.test"], [], True, id="two Origins"),
        pytest.param([], ["cross-site"], True, id="cross-site without Origin"),
        pytest.param([], ["same-site"], False, id="same-site"),
    ],
)
def test_origin_check(origins: list[str], sites: list[str], refused: bool) -> None:
    assert (CHECK.refusal(origins, sites) is not None) is refused


def test_cookies_are_built_with_every_attribute() -> None:
    tokens = TokensConfig(
        cookie=CookieConfig(same_site="lax"), access_cookie=AccessCookieConfig("gw_access")
    )
    cookies = SessionCookies(tokens, secure=True)
    assert cookies.refresh("tok", 60) == (
        "gw_refresh=tok; Max-Age=60; Path=/auth; HttpOnly; SameSite=Lax; Secure"
    )
    assert (
        cookies.access("at", 5) == "gw_access=at; Max-Age=5; Path=/; HttpOnly; SameSite=Lax; Secure"
    )
    cleared = cookies.cleared()
    assert [c.split(";")[0] for c in cleared] == ["gw_refresh="] * 4 + ["gw_access="]
    # every path that reaches /auth/refresh, the configured one last
    paths = [c.split("Path=")[1].split(";")[0] for c in cleared[:4]]
    assert paths == ["/", "/auth/", "/auth/refresh", "/auth"]


def test_every_distinct_cookie_of_a_name_is_read_in_order() -> None:
    headers = ["a=1; gw_refresh=first", "gw_refresh=second; gw_refresh=first"]
    assert read_cookies(headers, "gw_refresh", limit=8) == ["first", "second"]
    assert read_cookies(headers, "gw_refresh", limit=1) == ["first"]
    quoted = ['x_gw_refresh=no; gw_refresh="quoted"']
    assert read_cookies(quoted, "gw_refresh", limit=8) == ["quoted"]
    assert read_cookies(["gw_refresh="], "gw_refresh", limit=8) == []


def test_a_bad_users_entry_is_skipped_by_name_without_its_hash() -> None:
    good = CHEAP.hash("pw")
    users, problems = parse_users(
        {
            "users": {
                "ok": {"password_hash": good, "scopes": ["a"], "claims": {"exp": 1, "t": 2}},
                "plain": {"password_hash": "hunter2"},
                "dated": {
                    "password_hash": good,
                    "claims": {"born": datetime.date(2000, 1, 1)},
                },
                "typo": {"password_hash": good, "scope": ["a"]},
            }
        }
    )
    assert set(users) == {"ok"} and dict(users["ok"].claims) == {"t": 2}
    assert len(problems) == 3 and not any("hunter2" in p or good in p for p in problems)


async def test_an_unknown_user_is_checked_against_a_hash_of_the_users_parameters() -> None:
    check = PasswordCheck()
    stored = CHEAP.hash("right-password")
    check.calibrate([stored])
    assert await check.verify(stored, "right-password")
    assert not await check.verify(stored, "wrong-password")
    started = time.perf_counter()
    assert not await check.verify(None, "right-password")
    assert time.perf_counter() - started < 0.2  # the cheap parameters, not the defaults


async def test_a_hash_argon2_cannot_read_is_a_mismatch_not_an_error() -> None:
    assert not await PasswordCheck().verify("$argon2id$garbage", "x")


def test_a_host_prefixed_refresh_cookie_is_cleared_only_at_the_root() -> None:
    tokens = TokensConfig(cookie=CookieConfig(name="__Host-gw_refresh", path="/"))
    cleared = SessionCookies(tokens, secure=True).cleared()
    assert len(cleared) == 1 and "Path=/;" in cleared[0]
