"""A gateway signing in through a real OpenID provider (``tests/oidc_provider.py``).

Two provider entries on one provider: ``corp`` (groups mapped to scopes, back-channel logout)
and ``strict`` (``require: {email_verified: true}``). Accounts at the provider: alice (admins,
staff), bob (staff and an unmapped group), mallory (email not verified).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from examples.demo_upstream import app as demo_app
from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess, free_port
from tests.oidc_provider import SECRET, Provider, client, provider_login, run_provider
from tests.upstream import ServerThread
from tests.waiting import eventually


@dataclass
class Sso:
    url: str
    gateway: GatewayProcess
    provider: Provider

    def sign_in(
        self,
        http: httpx.Client,
        username: str,
        *,
        name: str = "corp",
        next_path: str = "/api/whoami",
    ) -> httpx.Response:
        """The whole flow with a scripted browser; the gateway's answer to the callback."""
        start = http.get(f"{self.url}/auth/oidc/{name}/start", params={"next": next_path})
        assert start.status_code == 302, start.text
        callback = provider_login(http, start.headers["location"], username)
        return http.get(callback)


@contextmanager
def sso_site(
    folder: Path, *, access_ttl: str = "15m", id_token_ttl: int = 3600, leeway: str = "30s"
) -> Iterator[Sso]:
    folder.mkdir(parents=True, exist_ok=True)
    port, upstream_port, admin_port = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    clients = [
        client(url),
        client(url, client_id="strict", name="strict"),
        client(url, client_id="other", name="other"),
    ]
    with (
        run_provider(clients, id_token_ttl=id_token_ttl) as provider,
        ServerThread(demo_app, upstream_port),
    ):
        common: dict[str, Any] = {"issuer": provider.issuer, "client_secret": "${OIDC_SECRET}"}
        config = folder / "routes.yaml"
        config.write_text(
            config_yaml(
                server={"public_url": url, "admin": {"port": admin_port}},
                tokens={
                    "issuer": url,
                    "keys": "./keys",
                    "access_ttl": access_ttl,
                    "leeway": leeway,
                    "access_cookie": {"name": "gw_access"},
                },
                store="sqlite:///./data/gateway.db",
                login={
                    "providers": [
                        {
                            "name": "corp",
                            "client_id": "gateway",
                            "scopes": ["openid", "email", "groups"],
                            "scopes_from": "groups",
                            "scope_map": {
                                "admins": ["orders:read", "orders:write"],
                                "staff": ["orders:read"],
                            },
                            "backchannel_logout": True,
                            **common,
                        },
                        {
                            "name": "strict",
                            "client_id": "strict",
                            "scopes": ["openid", "email"],
                            "require": {"email_verified": True},
                            **common,
                        },
                    ]
                },
                routes=[
                    route(
                        "whoami",
                        "/api/whoami",
                        f"http://127.0.0.1:{upstream_port}",
                        methods=["GET"],
                    ),
                    route(
                        "orders",
                        "/api/orders",
                        f"http://127.0.0.1:{upstream_port}",
                        methods=["GET"],
                        scopes=["orders:read"],
                    ),
                ],
            )
        )
        gateway = GatewayProcess(config, port, admin_port=admin_port, env={"OIDC_SECRET": SECRET})
        try:
            # Discovery runs in the background: /readyz says when the providers are known.
            def ready() -> httpx.Response:
                answer = httpx.get(f"{gateway.admin_url}/readyz")
                assert answer.status_code == 200
                return answer

            eventually(ready, timeout=15)
            yield Sso(url, gateway, provider)
        finally:
            gateway.stop()
