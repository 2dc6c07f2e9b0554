"""A provider down at start does not stop ``serve``; ``/readyz`` names it until discovered."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.configs import route
from tests.conftest import GatewayProcess, free_port
from tests.oidc_provider import client, need_node, run_provider
from tests.waiting import eventually


def test_readyz_names_a_provider_until_it_is_discovered(
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    need_node()
    provider_port, port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{provider_port}"
    gateway = start_gateway(
        {
            "login": {"providers": [{"name": "corp", "issuer": issuer, "client_id": "gateway"}]},
            "routes": [route("api", "/api", "http://127.0.0.1:9")],
        }
    )
    ready = httpx.get(f"{gateway.admin_url}/readyz")
    assert ready.status_code == 503
    assert any("OIDC provider corp" in reason for reason in ready.json()["reasons"])
    assert httpx.get(f"{gateway.url}/auth/oidc/corp/start").status_code == 503
    with run_provider([client(f"http://127.0.0.1:{port}")], port=provider_port):

        def discovered() -> httpx.Response:
            answer = httpx.get(f"{gateway.admin_url}/readyz")
            assert answer.status_code == 200, answer.text
            return answer

        eventually(discovered, timeout=40, interval=0.5)
        assert httpx.get(f"{gateway.url}/auth/oidc/corp/start").status_code == 302
