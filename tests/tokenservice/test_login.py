"""POST /auth/login and the sign-in page (docs/behaviour.md#endpoints)."""

from __future__ import annotations

import html
import json
import statistics
import time

import jwt
import pytest

from tests.tokenservice.conftest import (
    CLIENT,
    PUBLIC_URL,
    USERS,
    Service,
    call,
    cookies_set,
    login,
    refresh_cookie,
    remember,
)
from tests.waiting import eventually

ALICE = USERS["alice"][0]


def test_a_json_login_answers_a_bearer_token_and_sets_the_refresh_cookie(
    service: Service,
) -> None:
    answer = login(service.url, "alice", ALICE)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert refresh_cookie(answer) is not None
    assert call(service.url, body["access_token"]).status_code == 200


def test_an_access_token_carries_the_rfc_9068_claims_and_the_users_claims(
    service: Service,
) -> None:
    token = login(service.url, "alice", ALICE).json()["access_token"]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["typ"] == "at+jwt" and header["kid"]
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "sid", "scope"} <= set(claims)
    assert claims["iss"] == PUBLIC_URL and claims["aud"] == "api" and claims["sub"] == "alice"
    assert claims["scope"] == "orders:read orders:write"
    assert claims["tenant"] == "acme"
    assert claims["exp"] - claims["iat"] == 300


def test_the_access_token_verifies_against_the_published_jwks(service: Service) -> None:
    token = login(service.url, "alice", ALICE).json()["access_token"]
    keys = jwt.PyJWKSet.from_dict(CLIENT.get(f"{service.url}/.well-known/jwks.json").json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience="api")
    assert claims["sub"] == "alice"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param(
            "application/x-www-form-urlencoded",
            b"username=alice&password=alice-correct-horse",
            id="urlencoded form",
        ),
        pytest.param(
            "multipart/form-data; boundary=XyZ",
            b"--XyZ\r\nContent-Disposition: form-data; name=username\r\n\r\nalice\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=password\r\n\r\n"
            b"alice-correct-horse\r\n--XyZ--\r\n",
            id="multipart form",
        ),
    ],
)
def test_a_form_login_works_like_a_json_one(
    service: Service, content_type: str, body: bytes
) -> None:
    answer = remember(
        CLIENT.post(
            f"{service.url}/auth/login", content=body, headers={"content-type": content_type}
        )
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "Bearer"


def test_unknown_user_wrong_password_and_disabled_account_get_the_same_answer(
    service: Service,
) -> None:
    answers = [
        login(service.url, "alice", "not-alices-password"),
        login(service.url, "nobody-by-that-name", "not-alices-password"),
        login(service.url, "mallory", "mallory-pass-word"),  # right password, disabled
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.content for a in answers}) == 1
    assert answers[0].json()["error"] == "invalid_credentials"
    assert all("set-cookie" not in a.headers for a in answers)


def test_an_unknown_user_costs_about_as_much_time_as_a_wrong_password(
    service: Service,
) -> None:
    def median_seconds(username: str) -> float:
        times = []
        for _ in range(7):
            started = time.perf_counter()
            assert login(service.url, username, "wrong-password-1234").status_code == 401
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    known = median_seconds("frank")
    unknown = median_seconds("no-such-user-here")
    assert 1 / 3 < unknown / known < 3, (known, unknown)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/json", b"{not json", id="malformed JSON"),
        pytest.param("application/json", b"[1, 2]", id="JSON array"),
        pytest.param("application/json", b'{"username": "alice"}', id="no password"),
        pytest.param(
            "application/json", b'{"username": "alice", "password": 5}', id="number password"
        ),
        pytest.param("text/plain", b"alice:secret", id="neither JSON nor a form"),
        pytest.param(
            "application/x-www-form-urlencoded",
            b"username=alice&password=%ff%fe",
            id="form not UTF-8",
        ),
        pytest.param(
            "application/x-www-form-urlencoded",
            b"username=alice&username=bob&password=x",
            id="form repeats a field",
        ),
        pytest.param("multipart/form-data", b"--x\r\n", id="multipart without boundary"),
        pytest.param(
            "application/json",
            b'{"username": "carol", "password": "wrong", "password": "carol-tr0ub4dor"}',
            id="JSON repeats a key",
        ),
    ],
)
def test_a_malformed_login_is_invalid_request(
    service: Service, content_type: str, body: bytes
) -> None:
    answer = CLIENT.post(
        f"{service.url}/auth/login", content=body, headers={"content-type": content_type}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


def test_a_login_body_over_16_kib_is_refused_before_it_is_read(service: Service) -> None:
    answer = CLIENT.post(
        f"{service.url}/auth/login",
        content=b"{" + b" " * 20000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        pytest.param("PUT", "/auth/login", "GET, HEAD, POST", id="PUT login"),
        pytest.param("GET", "/auth/refresh", "POST", id="GET refresh"),
        pytest.param("DELETE", "/auth/logout", "POST", id="DELETE logout"),
        pytest.param("GET", "/auth/logout", "POST", id="GET logout"),
        pytest.param("POST", "/.well-known/jwks.json", "GET, HEAD", id="POST jwks"),
        pytest.param("DELETE", "/.well-known/jwks.json", "GET, HEAD", id="DELETE jwks"),
    ],
)
def test_the_token_endpoints_refuse_other_methods_with_allow(
    service: Service, method: str, path: str, allow: str
) -> None:
    answer = CLIENT.request(method, f"{service.url}{path}")
    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    assert answer.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/auth/nothing-here", id="under /auth"),
        pytest.param("/auth", id="/auth itself"),
        pytest.param("/.well-known", id="/.well-known itself"),
        pytest.param("/.well-known/openid-configuration", id="under /.well-known"),
    ],
)
def test_an_unknown_path_of_the_gateways_own_is_a_json_404(service: Service, path: str) -> None:
    answer = CLIENT.get(f"{service.url}{path}")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


def test_the_sign_in_page_is_self_contained_html_under_a_strict_csp(service: Service) -> None:
    page = CLIENT.get(f"{service.url}/auth/login")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp
    html = page.text
    assert '<form method="post" action="/auth/login">' in html
    assert '<label for="username">' in html and '<label for="password">' in html
    assert 'autocomplete="current-password"' in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


@pytest.mark.parametrize(
    ("next_value", "kept"),
    [
        pytest.param("/orders/7?view=full", "/orders/7?view=full", id="same-origin path"),
        pytest.param("https://evil.example/", "/", id="absolute URL"),
        pytest.param("//evil.example/", "/", id="scheme-relative URL"),
        pytest.param("/\\evil.example/", "/", id="backslash trick"),
        pytest.param('/x"><script>alert(1)</script>', "/", id="markup"),
    ],
)
def test_the_sign_in_page_keeps_next_only_when_it_is_a_local_path(
    service: Service, next_value: str, kept: str
) -> None:
    page = CLIENT.get(f"{service.url}/auth/login", params={"next": next_value}).text
    assert f'<input type="hidden" name="next" value="{html.escape(kept)}">' in page
    assert "<script>alert" not in page


def test_a_browser_form_login_redirects_to_a_local_next(service: Service) -> None:
    answer = CLIENT.post(
        f"{service.url}/auth/login",
        data={"username": "alice", "password": ALICE, "next": "/orders/7?view=full"},
        headers={"accept": "text/html,application/xhtml+xml"},
    )
    remember(answer)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/orders/7?view=full"
    assert "gw_refresh" in cookies_set(answer)


@pytest.mark.parametrize(
    "next_value",
    [
        pytest.param("https://evil.example/", id="absolute URL"),
        pytest.param("//evil.example/", id="scheme-relative URL"),
    ],
)
def test_a_browser_form_login_sends_an_off_site_next_to_the_root(
    service: Service, next_value: str
) -> None:
    answer = CLIENT.post(
        f"{service.url}/auth/login",
        data={"username": "alice", "password": ALICE, "next": next_value},
        headers={"accept": "text/html"},
    )
    remember(answer)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


def test_a_browser_form_login_with_a_wrong_password_shows_the_page_again(
    service: Service,
) -> None:
    answer = CLIENT.post(
        f"{service.url}/auth/login",
        data={"username": "alice", "password": "typed-it-wrong-1", "next": "/orders"},
        headers={"accept": "text/html"},
    )
    assert answer.status_code == 401
    assert 'role="alert"' in answer.text and 'value="/orders"' in answer.text
    assert "typed-it-wrong-1" not in answer.text


def test_a_browser_form_login_missing_a_field_shows_the_page_again(service: Service) -> None:
    answer = CLIENT.post(
        f"{service.url}/auth/login", data={"username": "alice"}, headers={"accept": "text/html"}
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in answer.text and 'name="password"' in answer.text


def test_a_malformed_multipart_login_leaves_no_line_in_the_log(service: Service) -> None:
    before = len(service.output())
    answer = CLIENT.post(
        f"{service.url}/auth/login",
        content=b"--y\r\nnot the boundary\r\n",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert answer.status_code == 400
    # The access log is flushed every 0.2 s, stderr at once: once the request's own line is
    # there, anything else it caused would be too.
    eventually(lambda: answer.headers["x-request-id"] in service.output()[before:])
    assert "multipart" not in service.output()[before:]


def test_the_access_log_names_who_logged_in_and_counts_the_body(service: Service) -> None:
    body = json.dumps({"username": "carol", "password": USERS["carol"][0]}).encode()
    answer = remember(
        CLIENT.post(
            f"{service.url}/auth/login",
            content=body,
            headers={"content-type": "application/json"},
        )
    )
    assert answer.status_code == 200

    def line() -> dict[str, object] | None:
        for text in service.gateway.stdout().splitlines():
            if text.startswith("{") and answer.headers["x-request-id"] in text:
                parsed: dict[str, object] = json.loads(text)
                return parsed
        return None

    found = eventually(line, timeout=2)
    assert (found["sub"], found["bytes_in"], found["status"]) == ("carol", len(body), 200)
