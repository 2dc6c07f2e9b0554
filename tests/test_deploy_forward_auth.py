"""deploy/forward-auth/verify_assertion.py, the upstream's check, run as an operator would run it
against a real gateway's JWKS: it accepts the assertion the upstream received, and refuses one
made for another route, a tampered one and an access token.

The proxy examples themselves run in tests/proxy/test_forward_auth_proxies.py (nginx, Caddy).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess, free_port
from tests.tokens import AUDIENCE, ISSUER, SigningKey
from tests.upstream import ServerThread, Upstream

SNIPPET = Path(__file__).resolve().parent.parent / "deploy" / "forward-auth" / "verify_assertion.py"


@dataclass
class Received:
    gateway: GatewayProcess
    assertion: str
    token: str


@pytest.fixture(scope="module")
def received(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Received]:
    """The assertion an upstream received behind a real gateway."""
    folder = tmp_path_factory.mktemp("snippet")
    key = SigningKey(folder / "keys", "RS256")
    app, port = Upstream(), free_port()
    config = folder / "routes.yaml"
    config.write_text(
        config_yaml(
            server={"admin": {"port": free_port()}},
            tokens={"issuer": ISSUER, "audience": AUDIENCE, "keys": "./keys"},
            store="sqlite:///./data/gateway.db",
            identity_assertion={},
            routes=[route("orders", "/orders", f"http://127.0.0.1:{port}")],
        )
    )
    with ServerThread(app, port):
        gateway = GatewayProcess(config, free_port())
        try:
            token = key.token(scope="orders:read")
            answer = httpx.get(
                gateway.url + "/orders", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert answer.status_code == 200
            [assertion] = app.seen[-1].header_values("x-gateway-assertion")
            yield Received(gateway, assertion, token)
        finally:
            gateway.stop()


def run_snippet(gateway: GatewayProcess, value: str, route_name: str = "orders") -> tuple[int, str]:
    env = {
        **os.environ,
        "GATEWAY_URL": gateway.url,
        "GATEWAY_ISSUER": ISSUER,
        "GATEWAY_ROUTE": route_name,
    }
    done = subprocess.run(
        [sys.executable, str(SNIPPET), value], capture_output=True, text=True, env=env, timeout=60
    )
    return done.returncode, done.stdout + done.stderr


def test_the_snippet_accepts_the_assertion_the_upstream_received(received: Received) -> None:
    status, output = run_snippet(received.gateway, received.assertion)
    assert status == 0, output
    assert "'sub': 'alice'" in output and "'aud': 'orders'" in output


def test_the_snippet_refuses_an_assertion_made_for_another_route(received: Received) -> None:
    status, output = run_snippet(received.gateway, received.assertion, route_name="billing")
    assert status == 1 and "not valid" in output


def test_the_snippet_refuses_a_tampered_assertion(received: Received) -> None:
    head, payload, signature = received.assertion.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    status, output = run_snippet(received.gateway, f"{head}.{payload}.{flipped}")
    assert status == 1 and "not valid" in output


def test_the_snippet_refuses_an_access_token_signed_by_the_same_keys(received: Received) -> None:
    status, output = run_snippet(received.gateway, received.token)
    assert status == 1 and "not a Gateway identity assertion" in output
