"""Ending sessions: POST /auth/logout and `gateway sessions revoke` (docs/behaviour.md#refresh-tokens-and-cookies)."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

from tests.conftest import ROOT
from tests.tokenservice.conftest import (
    CLIENT,
    Service,
    call,
    cookies_set,
    logout,
    refresh,
    refused_within,
    start_session,
)


def test_logout_answers_204_and_clears_the_cookie(service: Service) -> None:
    session = start_session(service.url, "carol")
    answer = logout(service.url, session.cookie)
    assert answer.status_code == 204
    cleared = cookies_set(answer)["gw_refresh"]
    assert cleared["value"] == "" and cleared["max-age"] == "0" and cleared["path"] == "/auth"
    assert refresh(service.url, session.cookie).status_code == 401


def test_logout_stops_the_sessions_access_token_within_a_second_and_a_half(
    service: Service,
) -> None:
    session = start_session(service.url, "carol")
    assert call(service.url, session.access_token).status_code == 200
    logout(service.url, session.cookie)
    assert refused_within(service.url, session.access_token, 1.5)
    refused = call(service.url, session.access_token)
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert "revoked" in refused.headers["www-authenticate"]


def test_logout_twice_or_without_a_cookie_is_fine(service: Service) -> None:
    session = start_session(service.url, "carol")
    assert logout(service.url, session.cookie).status_code == 204
    assert logout(service.url, session.cookie).status_code == 204
    assert logout(service.url, None).status_code == 204


def test_logout_ends_the_real_session_behind_a_planted_refresh_cookie(service: Service) -> None:
    # A cookie planted for a longer path (/auth/logout) comes first in the browser's header.
    real, planted = start_session(service.url, "carol"), start_session(service.url, "dave")
    answer = CLIENT.post(
        f"{service.url}/auth/logout",
        headers={"cookie": f"gw_refresh={planted.cookie}; gw_refresh={real.cookie}"},
    )
    assert answer.status_code == 204
    assert refresh(service.url, real.cookie).status_code == 401
    assert refused_within(service.url, real.access_token, 1.5)


def test_logout_ends_the_real_session_behind_a_dozen_planted_cookies(service: Service) -> None:
    # As many as a browser can hold for the paths and parent domains that reach the endpoint.
    real = start_session(service.url, "carol")
    planted = "; ".join(f"gw_refresh={secrets.token_urlsafe(32)}" for _ in range(12))
    answer = CLIENT.post(
        f"{service.url}/auth/logout", headers={"cookie": f"{planted}; gw_refresh={real.cookie}"}
    )
    assert answer.status_code == 204
    assert refresh(service.url, real.cookie).status_code == 401


def test_logout_leaves_the_users_other_sessions_alone(service: Service) -> None:
    ending, staying = start_session(service.url, "carol"), start_session(service.url, "carol")
    logout(service.url, ending.cookie)
    time.sleep(1.0)  # two polls
    assert call(service.url, staying.access_token).status_code == 200
    assert refresh(service.url, staying.cookie).status_code == 200


def revoke(service: Service, sub: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "sessions",
            "revoke",
            "--sub",
            sub,
            "--config",
            str(service.config_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )


def test_sessions_revoke_ends_every_session_of_the_user_everywhere(service: Service) -> None:
    sessions = [start_session(service.url, "dave") for _ in range(3)]
    other = start_session(service.url, "erin")
    done = revoke(service, "dave")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("revoked 3 sessions of dave")
    for session in sessions:
        assert refused_within(service.url, session.access_token, 1.5)
        assert refresh(service.url, session.cookie).status_code == 401
    assert call(service.url, other.access_token).status_code == 200


def test_sessions_revoke_for_a_user_without_sessions_says_so(service: Service) -> None:
    done = revoke(service, "nobody-logged-in")
    assert done.returncode == 0
    assert done.stdout.strip() == "nobody-logged-in has no live sessions"
