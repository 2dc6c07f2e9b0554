"""A gateway in front of a real upstream, with a key the tests sign tokens with."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess, free_port
from tests.tokens import AUDIENCE, ISSUER, SigningKey
from tests.upstream import ServerThread, Upstream


@dataclass
class Stack:
    gateway: GatewayProcess
    upstream: Upstream
    upstream_port: int
    key: SigningKey
    other_keys: dict[str, SigningKey]

    @property
    def url(self) -> str:
        return self.gateway.url


def raw_request(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (httpx would normalise dot segments client-side)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def routes_yaml(upstream_port: int, dead_port: int) -> str:
    """The route table every test here shares; ``dead_port`` is one nothing listens on."""
    up = f"http://127.0.0.1:{upstream_port}"
    return config_yaml(
        server={"max_body": "1MiB", "admin": {"port": free_port()}},
        tokens={"issuer": ISSUER, "audience": AUDIENCE, "keys": "./keys"},
        store="sqlite:///./data/gateway.db",
        routes=[
            route("public", "/public", up, auth="public"),
            route("admin", "/admin", up),
            route("optional", "/optional", up, auth="optional"),
            route("echo", "/echo", up),
            route("orders", "/orders", up, scopes=["orders:read", "orders:list"]),
            route("tenant", "/tenant", up, claims={"tenant": "acme"}),
            route("only-get", "/only-get", up, methods=["GET"], auth="public"),
            route(
                "stripped",
                "/api/v1",
                f"{up}/base",
                strip_prefix="/api",
                auth="public",
                headers={"set": {"X-Env": "test"}, "remove": ["X-Debug"]},
            ),
            route("download", "/download", up, auth="public"),
            route("upload", "/upload", up, auth="public", max_body="64MiB"),
            route("small", "/small", up, auth="public", max_body=10),
            route("cookies", "/cookies", up, auth="public"),
            route("hop", "/hop", up, auth="public"),
            route("slow", "/slow", up, auth="public", timeout="1s"),
            route("dead", "/dead", f"http://127.0.0.1:{dead_port}", auth="public"),
            route("with-auth-header", "/fwd-auth", up, forward_authorization=True),
        ],
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One upstream and one gateway per test module: starting a process per test is slow."""
    tmp_path = tmp_path_factory.mktemp("stack")
    app = Upstream()
    port = free_port()
    keys = tmp_path / "keys"
    # Older keys of every algorithm, then the newest: all verify, the newest signs.
    extra = {
        alg: SigningKey(keys, alg, kid=f"20200101T00000{i}Z-test")
        for i, alg in enumerate(("RS256", "ES256"))
    }
    key = SigningKey(keys, "EdDSA")
    config = tmp_path / "routes.yaml"
    config.write_text(routes_yaml(port, dead_port=free_port()))
    with ServerThread(app, port):
        gateway = GatewayProcess(config, free_port())
        try:
            yield Stack(gateway, app, port, key, extra)
        finally:
            gateway.stop()
