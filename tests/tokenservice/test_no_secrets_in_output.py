"""Nothing secret in the gateway's output (docs/behaviour.md#logs-and-metrics): no password, refresh or access token."""

from __future__ import annotations

from tests.tokenservice.conftest import (
    CLIENT,
    USERS,
    Service,
    call,
    login,
    logout,
    refresh,
    refresh_cookie,
    remember,
)
from tests.waiting import eventually


def test_no_password_or_token_used_in_a_whole_session_appears_in_the_output(
    service: Service,
) -> None:
    password = USERS["frank"][0]
    used = [password, "frank-wrong-guess-77", "frank-in-a-bad-body-88"]

    wrong = login(service.url, "frank", "frank-wrong-guess-77")
    bad_body = CLIENT.post(
        f"{service.url}/auth/login",
        content=b'{"username": "frank", "password": "frank-in-a-bad-body-88"',
        headers={"content-type": "application/json"},
    )
    html = remember(
        CLIENT.post(
            f"{service.url}/auth/login",
            data={"username": "frank", "password": password, "next": "/orders"},
            headers={"accept": "text/html"},
        )
    )
    logged_in = login(service.url, "frank", password)
    first = refresh_cookie(logged_in)
    access = logged_in.json()["access_token"]
    calls = [
        call(service.url, access),
        call(service.url, access, f"/orders/1?access_token={access}"),
    ]
    second = refresh(service.url, first)
    third = refresh(service.url, refresh_cookie(second))
    reused = refresh(service.url, first)  # two rotations ago: reuse, the family is revoked
    assert reused.status_code == 401
    last = logout(service.url, refresh_cookie(html))
    used += [first or "", access, second.json()["access_token"], third.json()["access_token"]]
    used += [refresh_cookie(second) or "", refresh_cookie(third) or "", refresh_cookie(html) or ""]
    # Every request's access-log line (each worker writes its lines every 0.2 s) and any
    # warning it caused (stderr, at once) reach the files.
    answers = [wrong, bad_body, html, logged_in, *calls, second, third, reused, last]
    ids = [answer.headers["x-request-id"] for answer in answers]
    eventually(lambda: all(request_id in service.output() for request_id in ids))

    output = service.output()
    assert '"path":"/auth/login"' in output  # the access log is there
    assert "refresh token reuse detected" in output  # and so is the warning
    assert [secret for secret in used if secret and secret in output] == []
