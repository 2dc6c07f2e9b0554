"""With ``tokens.access_cookie``: the cookie carries the token, browsers are sent to sign in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.configs import route
from tests.conftest import GatewayProcess
from tests.tokens import ISSUER, SigningKey
from tests.upstream import Upstream

OWN = "http://localhost:8080"  # the default public_url


@pytest.fixture
def cookie_gateway(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess], tmp_path: Path
) -> tuple[GatewayProcess, SigningKey]:
    _, port = upstream
    key = SigningKey(tmp_path / "keys", "EdDSA")
    gateway = start_gateway(
        {
            "tokens": {"issuer": ISSUER, "keys": "./keys", "access_cookie": {"name": "gw_access"}},
            "routes": [route("app", "/app", f"http://127.0.0.1:{port}")],
        }
    )
    return gateway, key


def test_the_access_cookie_is_accepted_and_not_forwarded(
    cookie_gateway: tuple[GatewayProcess, SigningKey],
) -> None:
    gateway, key = cookie_gateway
    response = httpx.get(
        f"{gateway.url}/app/x", headers={"Cookie": f"gw_access={key.token(sub='fay')}; theme=1"}
    )
    assert response.status_code == 200
    headers = dict(response.json()["headers"])
    assert headers["x-auth-subject"] == "fay"
    assert headers["cookie"] == "theme=1"


def test_a_browser_navigation_without_a_token_is_sent_to_sign_in(
    cookie_gateway: tuple[GatewayProcess, SigningKey],
) -> None:
    gateway, _ = cookie_gateway
    response = httpx.get(f"{gateway.url}/app/page?tab=2", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login?next=%2Fapp%2Fpage%3Ftab%3D2"


def test_an_api_call_without_a_token_still_gets_401(
    cookie_gateway: tuple[GatewayProcess, SigningKey],
) -> None:
    gateway, _ = cookie_gateway
    response = httpx.get(f"{gateway.url}/app/data", headers={"Accept": "application/json"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "http://evil.example"}, id="foreign Origin"),
        pytest.param({"Origin": "null"}, id="null Origin"),
        pytest.param({"Origin": ""}, id="empty Origin"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="Sec-Fetch-Site cross-site"),
    ],
)
def test_a_cross_site_unsafe_request_riding_on_the_access_cookie_is_403(
    cookie_gateway: tuple[GatewayProcess, SigningKey], headers: dict[str, str]
) -> None:
    gateway, key = cookie_gateway
    response = httpx.post(
        f"{gateway.url}/app/transfer",
        headers={"Cookie": f"gw_access={key.token()}", **headers},
        content=b"amount=100",
    )
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    "repeated",
    [
        pytest.param([("Origin", "http://evil.example"), ("Origin", OWN)], id="two Origins"),
        pytest.param(
            [("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Site", "same-origin")],
            id="two Sec-Fetch-Sites",
        ),
    ],
)
def test_a_repeated_cross_site_header_is_judged_whole_not_by_its_last_value(
    cookie_gateway: tuple[GatewayProcess, SigningKey], repeated: list[tuple[str, str]]
) -> None:
    gateway, key = cookie_gateway
    response = httpx.post(
        f"{gateway.url}/app/transfer",
        headers=[("Cookie", f"gw_access={key.token()}"), *repeated],
        content=b"amount=100",
    )
    assert response.status_code == 403


def test_a_same_origin_post_with_the_access_cookie_passes(
    cookie_gateway: tuple[GatewayProcess, SigningKey],
) -> None:
    gateway, key = cookie_gateway
    response = httpx.post(
        f"{gateway.url}/app/transfer",
        headers={
            "Cookie": f"gw_access={key.token()}",
            "Origin": "http://localhost:8080",
            "Sec-Fetch-Site": "same-origin",
        },
        content=b"amount=100",
    )
    assert response.status_code == 200


def test_a_bearer_header_is_not_subject_to_the_cookie_csrf_check(
    cookie_gateway: tuple[GatewayProcess, SigningKey],
) -> None:
    gateway, key = cookie_gateway
    response = httpx.post(
        f"{gateway.url}/app/transfer",
        headers={"Authorization": f"Bearer {key.token()}", "Origin": "http://evil.example"},
        content=b"amount=100",
    )
    assert response.status_code == 200
