"""The seed's whole flow, end to end, in real time (the README's curl flow)."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt

from tests.tokenservice.conftest import (
    USERS,
    Service,
    call,
    login,
    refresh,
    refresh_cookie,
)


def sleep_until(wall_time: float) -> None:
    time.sleep(max(0.0, wall_time - time.time()))


def test_login_call_expire_refresh_call_session_ends_login_again(
    start_service: Callable[..., Service],
) -> None:
    service = start_service(access_ttl="2s", leeway=0, refresh_ttl="6s", refresh_idle_ttl="6s")
    password = USERS["alice"][0]

    logged_in = login(service.url, "alice", password)
    login_done = time.time()
    assert logged_in.status_code == 200
    assert logged_in.json()["expires_in"] == 2
    access_token = logged_in.json()["access_token"]
    cookie = refresh_cookie(logged_in)
    assert call(service.url, access_token).status_code == 200

    sleep_until(jwt.decode(access_token, options={"verify_signature": False})["exp"] + 0.1)
    expired = call(service.url, access_token)
    assert expired.status_code == 401
    assert "expired" in expired.headers["www-authenticate"]

    refreshed = refresh(service.url, cookie)
    assert refreshed.status_code == 200
    cookie = refresh_cookie(refreshed)
    assert call(service.url, refreshed.json()["access_token"]).status_code == 200

    sleep_until(login_done + 6.2)  # the family's absolute life (refresh_ttl) is over
    ended = refresh(service.url, cookie)
    assert ended.status_code == 401
    assert ended.json()["error"] == "invalid_grant"

    again = login(service.url, "alice", password)
    assert again.status_code == 200
    assert call(service.url, again.json()["access_token"]).status_code == 200
