"""Cross-site refusals on the token endpoints (docs/behaviour.md#cross-site-requests: CSRF and login CSRF)."""

from __future__ import annotations

import pytest

from tests.tokenservice.conftest import CLIENT, CORS_ORIGIN, PUBLIC_URL, USERS, Service, remember

ENDPOINTS = [
    pytest.param("/auth/login", id="login"),
    pytest.param("/auth/refresh", id="refresh"),
    pytest.param("/auth/logout", id="logout"),
]


def post(service: Service, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    body = {"username": "bob", "password": USERS["bob"][0]}
    answer = remember(CLIENT.post(f"{service.url}{path}", json=body, headers=headers))
    return answer.status_code, answer.json() if answer.content else {}


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"origin": "https://evil.example"}, id="another origin"),
        pytest.param({"origin": "null"}, id="Origin null"),
        pytest.param({"origin": "http://gateway.test:8443"}, id="our host on another port"),
        pytest.param({"sec-fetch-site": "cross-site"}, id="Sec-Fetch-Site cross-site"),
        pytest.param(
            {"origin": PUBLIC_URL, "sec-fetch-site": "cross-site"},
            id="cross-site despite our Origin",
        ),
    ],
)
def test_a_cross_site_request_is_forbidden(
    service: Service, path: str, headers: dict[str, str]
) -> None:
    status, body = post(service, path, headers)
    assert status == 403
    assert body["error"] == "forbidden"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no browser headers"),
        pytest.param({"origin": PUBLIC_URL}, id="our own Origin"),
        pytest.param({"origin": PUBLIC_URL.upper()}, id="our Origin in capitals"),
        pytest.param({"sec-fetch-site": "same-origin"}, id="Sec-Fetch-Site same-origin"),
        pytest.param({"origin": CORS_ORIGIN}, id="a CORS origin"),
        pytest.param(
            {"origin": CORS_ORIGIN, "sec-fetch-site": "cross-site"},
            id="a CORS origin, cross-site",
        ),
    ],
)
def test_a_same_site_or_cors_login_is_let_through(
    service: Service, headers: dict[str, str]
) -> None:
    status, body = post(service, "/auth/login", headers)
    assert status == 200, body


def test_a_cors_origin_gets_the_cors_answer_headers(service: Service) -> None:
    answer = CLIENT.post(f"{service.url}/auth/refresh", headers={"origin": CORS_ORIGIN})
    assert answer.status_code == 401
    assert answer.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert answer.headers["access-control-allow-credentials"] == "true"
