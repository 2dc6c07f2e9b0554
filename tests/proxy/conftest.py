"""A gateway in front of a real upstream, with a key the tests sign tokens with."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

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


def routes_yaml(upstream_port: int, extra_routes: str = "") -> str:
    up = f"http://127.0.0.1:{upstream_port}"
    return f"""
server:
  max_body: 1MiB
  admin: {{port: {free_port()}}}
tokens:
  issuer: {ISSUER}
  audience: {AUDIENCE}
  keys: ./keys
store: sqlite:///./data/gateway.db
routes:
  - name: public
    path: /public
    upstream: {up}
    auth: public
  - name: admin
    path: /admin
    upstream: {up}
  - name: optional
    path: /optional
    upstream: {up}
    auth: optional
  - name: echo
    path: /echo
    upstream: {up}
  - name: orders
    path: /orders
    upstream: {up}
    scopes: [orders:read, orders:list]
  - name: tenant
    path: /tenant
    upstream: {up}
    claims: {{tenant: acme}}
  - name: only-get
    path: /only-get
    methods: [GET]
    upstream: {up}
    auth: public
  - name: stripped
    path: /api/v1
    strip_prefix: /api
    upstream: {up}/base
    auth: public
    headers: {{set: {{X-Env: test}}, remove: [X-Debug]}}
  - name: download
    path: /download
    upstream: {up}
    auth: public
  - name: upload
    path: /upload
    upstream: {up}
    auth: public
    max_body: 64MiB
  - name: small
    path: /small
    upstream: {up}
    auth: public
    max_body: 10
  - name: cookies
    path: /cookies
    upstream: {up}
    auth: public
  - name: hop
    path: /hop
    upstream: {up}
    auth: public
  - name: slow
    path: /slow
    upstream: {up}
    auth: public
    timeout: 1s
  - name: dead
    path: /dead
    upstream: http://127.0.0.1:{{DEAD_PORT}}
    auth: public
  - name: with-auth-header
    path: /fwd-auth
    upstream: {up}
    forward_authorization: true
{extra_routes}
"""


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
    text = routes_yaml(port).replace("{DEAD_PORT}", str(free_port()))
    config.write_text(text)
    with ServerThread(app, port):
        gateway = GatewayProcess(config, free_port())
        try:
            yield Stack(gateway, app, port, key, extra)
        finally:
            gateway.stop()
