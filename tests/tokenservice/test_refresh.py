"""POST /auth/refresh: rotation, the grace window, reuse detection (docs/behaviour.md#refresh-tokens-and-cookies)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import pytest
import yaml

from tests.tokenservice.conftest import (
    CLIENT,
    Service,
    call,
    cookies_set,
    refresh,
    refresh_cookie,
    refused_within,
    remember,
    start_session,
)


def claims_of(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_a_refresh_rotates_the_cookie_and_keeps_the_session(service: Service) -> None:
    session = start_session(service.url, "alice")
    answer = refresh(service.url, session.cookie)
    assert answer.status_code == 200
    new_cookie = refresh_cookie(answer)
    assert new_cookie is not None and new_cookie != session.cookie
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert claims_of(body["access_token"])["sid"] == claims_of(session.access_token)["sid"]
    assert claims_of(body["access_token"])["scope"] == "orders:read orders:write"
    assert call(service.url, body["access_token"]).status_code == 200


def test_a_refresh_answer_is_not_cached(service: Service) -> None:
    session = start_session(service.url, "alice")
    answer = refresh(service.url, session.cookie)
    assert answer.headers["cache-control"] == "no-store"


def test_the_previous_cookie_within_the_grace_window_gets_the_rotations_own_cookie(
    service: Service,
) -> None:
    session = start_session(service.url, "bob")
    newest = refresh_cookie(refresh(service.url, session.cookie))
    # Two workers: the replay may reach the other one, which derives the same token.
    replays = [refresh(service.url, session.cookie) for _ in range(4)]
    assert [r.status_code for r in replays] == [200] * 4
    assert {refresh_cookie(r) for r in replays} == {newest}
    assert call(service.url, replays[0].json()["access_token"]).status_code == 200
    assert refresh(service.url, newest).status_code == 200  # nothing was revoked


def test_a_refresh_whose_answer_was_lost_costs_no_session(service: Service) -> None:
    session = start_session(service.url, "bob")
    refresh(service.url, session.cookie)  # rotated in the store; the client never saw it
    retry = refresh(service.url, session.cookie)
    assert retry.status_code == 200
    kept = refresh_cookie(retry)
    time.sleep(2.3)  # past refresh_reuse_grace (2s): the retry's cookie is the live one
    after = refresh(service.url, kept)
    assert after.status_code == 200
    assert call(service.url, after.json()["access_token"]).status_code == 200


def test_the_old_cookie_after_the_grace_window_revokes_the_whole_family(
    service: Service,
) -> None:
    session = start_session(service.url, "carol")
    rotated = refresh(service.url, session.cookie)
    newest = refresh_cookie(rotated)
    time.sleep(2.3)  # refresh_reuse_grace is 2s
    replay = refresh(service.url, session.cookie)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_grant"
    assert cookies_set(replay)["gw_refresh"]["max-age"] == "0"
    assert refresh(service.url, newest).status_code == 401
    assert refused_within(service.url, rotated.json()["access_token"], 1.5)


def test_only_the_immediately_previous_cookie_has_a_grace_window(service: Service) -> None:
    session = start_session(service.url, "dave")
    second = refresh_cookie(refresh(service.url, session.cookie))
    third = refresh_cookie(refresh(service.url, second))
    assert refresh(service.url, session.cookie).status_code == 401  # two rotations ago: reuse
    assert refresh(service.url, third).status_code == 401


def test_twenty_concurrent_refreshes_of_one_cookie_rotate_it_once(service: Service) -> None:
    session = start_session(service.url, "erin")
    rotated = refreshes(service, "rotated")
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: refresh(service.url, session.cookie), range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert refreshes(service, "rotated") == rotated + 1  # the other 19 were grace answers
    cookies = {refresh_cookie(a) for a in answers}
    assert len(cookies) == 1  # and every one carries the token that rotation issued
    assert refresh(service.url, cookies.pop()).status_code == 200


def refreshes(service: Service, outcome: str) -> float:
    """gateway_refreshes_total{outcome} across the service's workers."""
    admin = yaml.safe_load(service.config_path.read_text())["server"]["admin"]["port"]
    metrics = httpx.get(f"http://127.0.0.1:{admin}/metrics").text
    line = f'gateway_refreshes_total{{outcome="{outcome}"}} '
    return sum(float(row.split()[-1]) for row in metrics.splitlines() if row.startswith(line))


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(None, id="no cookie"),
        pytest.param("", id="empty cookie"),
        pytest.param("not-a-token", id="garbage"),
        pytest.param("A" * 43, id="well-formed but unknown"),
        pytest.param("x" * 5000, id="huge"),
    ],
)
def test_a_refresh_without_a_live_token_is_invalid_grant_and_clears_the_cookie(
    service: Service, cookie: str | None
) -> None:
    answer = refresh(service.url, cookie)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_grant"
    cleared = cookies_set(answer)["gw_refresh"]
    assert cleared["value"] == "" and cleared["max-age"] == "0" and cleared["path"] == "/auth"


def test_two_different_refresh_cookies_end_both_sessions_and_clear_every_path(
    service: Service,
) -> None:
    # The first one came from a cookie planted for a longer path (or left at an earlier
    # cookie path): using it could sign the user into the planter's session.
    planted, real = start_session(service.url, "dave"), start_session(service.url, "carol")
    answer = remember(
        CLIENT.post(
            f"{service.url}/auth/refresh",
            headers={"cookie": f"gw_refresh={planted.cookie}; gw_refresh={real.cookie}"},
        )
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_grant"
    cleared = {
        attributes.split("path=")[1].split(";")[0]
        for attributes in (v.lower() for v in answer.headers.get_list("set-cookie"))
        if attributes.startswith("gw_refresh=;")
    }
    assert cleared == {"/", "/auth", "/auth/", "/auth/refresh"}
    assert refresh(service.url, real.cookie).status_code == 401
    assert refresh(service.url, planted.cookie).status_code == 401
    assert refused_within(service.url, real.access_token, 1.5)
