"""The identity assertion on proxied requests, and ``/auth/verify`` on a real socket: a real
gateway in front of a real upstream, the assertion checked with PyJWT against the gateway's
own ``/.well-known/jwks.json``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess, free_port
from tests.tokens import AUDIENCE, ISSUER, SigningKey
from tests.upstream import ServerThread, Upstream

HEADER = "x-gateway-assertion"


@dataclass
class Stack:
    gateway: GatewayProcess
    upstream: Upstream
    key: SigningKey

    def seen_after(
        self, path: str, token: str | None = None, **headers: str
    ) -> dict[str, list[str]]:
        """The headers the upstream received for one GET of ``path``."""
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self.upstream.seen.clear()
        answer = httpx.get(self.gateway.url + path, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        [seen] = self.upstream.seen
        found: dict[str, list[str]] = {}
        for name, value in seen.headers:
            found.setdefault(name, []).append(value)
        return found


def _config(up: str, *, trusted: list[str]) -> str:
    return config_yaml(
        server={"trusted_proxies": trusted, "admin": {"port": free_port()}},
        tokens={"issuer": ISSUER, "audience": AUDIENCE, "keys": "./keys"},
        store="sqlite:///./data/gateway.db",
        identity_headers={"X-Auth-Subject": "sub", "X-Auth-Tenant": "tenant"},
        identity_assertion={"header": "X-Gateway-Assertion", "ttl": "30s"},
        routes=[
            route("orders", "/orders", up),
            route("quiet", "/quiet", up, identity_assertion=False),
            route("open", "/open", up, auth="public"),
            route("maybe", "/maybe", up, auth="optional"),
        ],
    )


def _stack(factory: pytest.TempPathFactory, *, trusted: list[str]) -> Iterator[Stack]:
    folder = factory.mktemp("assertion")
    key = SigningKey(folder / "keys", "ES256")
    app, port = Upstream(), free_port()
    config = folder / "routes.yaml"
    config.write_text(_config(f"http://127.0.0.1:{port}", trusted=trusted))
    with ServerThread(app, port):
        gateway = GatewayProcess(config, free_port())
        try:
            yield Stack(gateway, app, key)
        finally:
            gateway.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Loopback is not trusted here: /auth/verify from the tests is from an untrusted peer."""
    yield from _stack(tmp_path_factory, trusted=["10.0.0.0/8"])


@pytest.fixture(scope="module")
def trusting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The tests on loopback are a trusted proxy."""
    yield from _stack(tmp_path_factory, trusted=["127.0.0.1"])


def verified(stack: Stack, value: str, route_name: str) -> dict[str, Any]:
    keys = jwt.PyJWKClient(f"{stack.gateway.url}/.well-known/jwks.json")
    claims: dict[str, Any] = jwt.decode(
        value,
        keys.get_signing_key_from_jwt(value),
        algorithms=["ES256"],
        audience=route_name,
        issuer=ISSUER,
    )
    return claims


def test_a_forwarded_request_carries_an_assertion_the_jwks_verifies(stack: Stack) -> None:
    token = stack.key.token(sid="fam-1", tenant="acme", scope="orders:read orders:write")
    [value] = stack.seen_after("/orders/1", token)[HEADER]
    claims = verified(stack, value, "orders")
    assert claims["sub"] == "alice" and claims["sid"] == "fam-1" and claims["tenant"] == "acme"
    assert claims["scope"] == "orders:read orders:write"
    assert claims["exp"] - claims["iat"] <= 30
    assert jwt.get_unverified_header(value)["typ"] == "gateway-identity+jwt"


def test_a_clients_assertion_header_never_reaches_the_upstream(stack: Stack) -> None:
    forged = {"X-Gateway-Assertion": "forged", "X_Gateway_Assertion": "forged"}
    seen = stack.seen_after("/orders/1", stack.key.token(), **forged)
    assert "forged" not in seen[HEADER] and len(seen[HEADER]) == 1
    assert "x_gateway_assertion" not in seen
    for path, token in (("/open", None), ("/maybe", None), ("/quiet", stack.key.token())):
        seen = stack.seen_after(path, token, **forged)
        assert HEADER not in seen and "x_gateway_assertion" not in seen


def test_a_route_with_identity_assertion_false_sends_identity_headers_only(stack: Stack) -> None:
    seen = stack.seen_after("/quiet", stack.key.token())
    assert seen["x-auth-subject"] == ["alice"] and HEADER not in seen


def test_anonymous_and_public_requests_carry_no_assertion(stack: Stack) -> None:
    assert HEADER not in stack.seen_after("/maybe")
    assert HEADER not in stack.seen_after("/open", stack.key.token())


def test_verify_from_a_peer_that_is_not_a_trusted_proxy_is_403(stack: Stack) -> None:
    answer = httpx.get(
        stack.gateway.url + "/auth/verify",
        headers={
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Uri": "/orders",
            "Authorization": f"Bearer {stack.key.token()}",
        },
        timeout=10,
    )
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    assert HEADER not in answer.headers and "x-auth-subject" not in answer.headers
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_verify_answers_200_with_the_identity_no_body_and_no_store_whatever_its_method(
    trusting: Stack, method: str
) -> None:
    answer = httpx.request(
        method,
        trusting.gateway.url + "/auth/verify",
        headers={
            "X-Original-Method": "GET",
            "X-Original-URI": "/orders/9",
            "Authorization": f"Bearer {trusting.key.token()}",
        },
        timeout=10,
    )
    assert answer.status_code == 200 and answer.content == b""
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-auth-subject"] == "alice"
    assert verified(trusting, answer.headers[HEADER], "orders")["sub"] == "alice"
    assert trusting.upstream.seen == []  # a decision, never a forwarded request


def test_a_refusal_from_verify_is_the_proxied_refusal(trusting: Stack) -> None:
    asked = httpx.get(
        trusting.gateway.url + "/auth/verify",
        headers={"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/orders/9"},
        timeout=10,
    )
    proxied = httpx.get(trusting.gateway.url + "/orders/9", timeout=10)
    assert asked.status_code == proxied.status_code == 401
    assert asked.headers["www-authenticate"] == proxied.headers["www-authenticate"]
    assert asked.json() == proxied.json()
    assert asked.headers["cache-control"] == "no-store"
