"""The proxy is transparent: what the client sends is what the upstream sees, and back."""

from __future__ import annotations

import http.client
import json

import httpx
import pytest

from tests.proxy.conftest import Stack


def test_method_path_query_body_and_status_pass_through(stack: Stack) -> None:
    response = httpx.request(
        "PATCH",
        f"{stack.url}/echo/items/7?b=2&a=1&a=%20x&status=201",
        content=b'{"x": 1}',
        headers={
            "Authorization": f"Bearer {stack.key.token()}",
            "X-Custom": "v1",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 201
    seen = response.json()
    assert seen["method"] == "PATCH"
    assert seen["raw_path"] == "/echo/items/7"
    assert seen["query"] == "b=2&a=1&a=%20x&status=201"
    assert seen["body_length"] == 8
    headers = dict(seen["headers"])
    assert headers["x-custom"] == "v1"
    assert headers["content-type"] == "application/json"


def test_upstream_response_headers_come_back(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/public/x?status=418")
    assert response.status_code == 418
    assert response.headers["x-upstream"] == "yes"


def test_two_upstream_set_cookies_both_arrive(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/cookies")
    cookies = response.headers.get_list("set-cookie")
    assert "a=1; Path=/" in cookies
    assert "b=2; Path=/; HttpOnly" in cookies


def test_upstream_cannot_set_the_gateways_own_cookie(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/cookies")
    names = [c.partition("=")[0].strip() for c in response.headers.get_list("set-cookie")]
    assert names == ["a", "b"]


def test_hop_by_hop_response_headers_are_dropped(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/hop")
    assert "x-secret-hop" not in response.headers
    assert "keep-alive" not in response.headers
    assert response.headers["x-custom"] == "kept"


def test_hop_by_hop_request_headers_are_dropped(stack: Stack) -> None:
    response = httpx.get(
        f"{stack.url}/public/x",
        headers={
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "1",
            "TE": "trailers",
            "Proxy-Authorization": "Basic eA==",
            "Upgrade": "h2c",
        },
    )
    names = {k for k, _ in response.json()["headers"]}
    assert not names & {"x-drop-me", "te", "proxy-authorization", "upgrade"}


def test_request_id_is_created_echoed_and_forwarded(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/public/x")
    request_id = response.headers["x-request-id"]
    assert len(request_id) >= 16
    assert dict(response.json()["headers"])["x-request-id"] == request_id


def test_client_request_id_is_kept(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/public/x", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert dict(response.json()["headers"])["x-request-id"] == "abc-123"


def test_forwarded_headers_describe_the_client_not_the_clients_claims(stack: Stack) -> None:
    response = httpx.get(
        f"{stack.url}/public/x",
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "for=6.6.6.6",
            "X-Real-IP": "6.6.6.6",
        },
    )
    seen = response.json()["headers"]
    headers = dict(seen)
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"].startswith("127.0.0.1:")
    assert "forwarded" not in headers and "x-real-ip" not in headers
    assert headers["via"] == "1.1 gateway"


@pytest.mark.parametrize(
    "header",
    [
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ],
)
def test_rerouting_headers_never_reach_the_upstream(stack: Stack, header: str) -> None:
    response = httpx.get(f"{stack.url}/public/x", headers={header: "/admin"})
    assert header.lower() not in dict(response.json()["headers"])


def test_authorization_is_withheld_from_the_upstream(stack: Stack) -> None:
    response = httpx.get(
        f"{stack.url}/echo", headers={"Authorization": f"Bearer {stack.key.token()}"}
    )
    assert response.status_code == 200
    assert "authorization" not in dict(response.json()["headers"])


def test_forward_authorization_sends_it(stack: Stack) -> None:
    token = stack.key.token()
    response = httpx.get(f"{stack.url}/fwd-auth", headers={"Authorization": f"Bearer {token}"})
    assert dict(response.json()["headers"])["authorization"] == f"Bearer {token}"


@pytest.mark.parametrize(
    "header",
    ["X_Forwarded_For", "X_Forwarded_Proto", "X_Forwarded_Host", "X_Real_IP", "X_Request_ID"],
)
def test_underscore_spellings_of_forwarding_headers_never_reach_the_upstream(
    stack: Stack, header: str
) -> None:
    response = httpx.get(f"{stack.url}/public/x", headers={header: "6.6.6.6"})
    assert header.lower() not in dict(response.json()["headers"])


def test_a_gateway_cookie_with_a_spaced_name_is_withheld(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/public/x", headers={"Cookie": "gw_refresh =secret; keep=1"})
    assert dict(response.json()["headers"])["cookie"] == "keep=1"


def test_gateway_cookies_are_withheld_and_others_kept(stack: Stack) -> None:
    response = httpx.get(
        f"{stack.url}/public/x",
        headers={"Cookie": "theme=dark; gw_refresh=secret-value; lang=en"},
    )
    assert dict(response.json()["headers"])["cookie"] == "theme=dark; lang=en"


def test_strip_prefix_and_header_rules(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/api/v1/things?q=1", headers={"X-Debug": "1"})
    seen = response.json()
    assert seen["raw_path"] == "/base/v1/things"
    headers = dict(seen["headers"])
    assert headers["x-env"] == "test"
    assert "x-debug" not in headers


def test_a_set_header_replaces_the_clients_and_remove_catches_the_underscore_spelling(
    stack: Stack,
) -> None:
    response = httpx.get(
        f"{stack.url}/api/v1/things",
        headers=[("X-Env", "prod-from-client"), ("X_Debug", "1"), ("x_env", "also-client")],
    )
    headers = response.json()["headers"]
    assert [v for k, v in headers if k == "x-env"] == ["test"]
    assert not [k for k, _ in headers if k in ("x_debug", "x_env")]


def test_unknown_path_is_404_json(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/nowhere")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_wrong_method_is_405_with_allow(stack: Stack) -> None:
    response = httpx.delete(f"{stack.url}/only-get")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json()["error"] == "method_not_allowed"


def test_error_bodies_are_json_with_description(stack: Stack) -> None:
    body = httpx.get(f"{stack.url}/nowhere").json()
    assert set(body) == {"error", "error_description"}
    json.dumps(body)


def test_no_header_is_added_that_the_client_did_not_send(stack: Stack) -> None:
    """aiohttp would add Accept, Accept-Encoding and User-Agent; a transparent proxy must not."""
    connection = http.client.HTTPConnection("127.0.0.1", stack.gateway.port, timeout=10)
    try:
        connection.putrequest("POST", "/public/x", skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", "example.test")
        connection.putheader("Content-Length", "2")
        connection.endheaders(b"hi")
        seen = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    names = {k for k, _ in seen["headers"]}
    assert not names & {"accept", "accept-encoding", "user-agent", "content-type"}
    assert seen["body_length"] == 2


def test_head_gets_the_headers_and_no_body(stack: Stack) -> None:
    response = httpx.head(f"{stack.url}/public/x")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) > 0
    assert response.content == b""


def test_expect_100_continue_gets_its_interim_answer_then_the_upstreams(stack: Stack) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", stack.gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(b"hello")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert b'"body_length": 5' in answer
