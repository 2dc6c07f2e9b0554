"""A gateway signing in through a real OpenID provider (``tests/oidc_provider.py``).

Two provider entries on one provider: ``corp`` (groups mapped to scopes, back-channel logout)
and ``strict`` (``require: {email_verified: true}``). Accounts at the provider: alice (admins,
staff), bob (staff and an unmapped group), mallory (email not verified).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

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
    replicas: list[GatewayProcess] = field(default_factory=list)

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
    folder: Path, *, store: str = "sqlite:///./data/gateway.db", replicas: int = 1
) -> Iterator[Sso]:
    """The provider, the demo upstream and the gateway; with ``replicas`` more than one,
    further gateways on the same folder (keys) and ``store``, all under the first's
    ``public_url`` (as behind a load balancer), in ``Sso.replicas``."""
    folder.mkdir(parents=True, exist_ok=True)
    port, upstream_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    clients = [
        client(url),
        client(url, client_id="strict", name="strict"),
        client(url, client_id="other", name="other"),
    ]
    with (
        run_provider(clients) as provider,
        ServerThread(demo_app, upstream_port),
    ):
        common: dict[str, Any] = {"issuer": provider.issuer, "client_secret": "${OIDC_SECRET}"}
        text = config_yaml(
            server={"public_url": url, "admin": {"port": 0}},
            tokens={
                "issuer": url,
                "keys": "./keys",
                "access_cookie": {"name": "gw_access"},
            },
            store=store,
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
        started: list[GatewayProcess] = []
        try:
            for index in range(replicas):
                config = folder / f"routes-{index}.yaml"
                admin_port = free_port()
                document = yaml.safe_load(text)
                document["server"]["admin"]["port"] = admin_port
                config.write_text(yaml.safe_dump(document, sort_keys=False))
                gateway = GatewayProcess(
                    config,
                    port if index == 0 else free_port(),
                    admin_port=admin_port,
                    env={"OIDC_SECRET": SECRET},
                )
                started.append(gateway)
                # Discovery runs in the background: /readyz says when the providers are known.
                eventually(lambda: _ready(gateway), timeout=15)
            yield Sso(url, started[0], provider, started[1:])
        finally:
            for gateway in started:
                gateway.stop()
        for gateway in started:
            printed = gateway.output()
            assert SECRET not in printed, "the gateway printed the client secret"
            assert "eyJ" not in printed, "the gateway printed a token"


def _ready(gateway: GatewayProcess) -> httpx.Response:
    answer = httpx.get(f"{gateway.admin_url}/readyz")
    assert answer.status_code == 200, answer.text
    return answer
