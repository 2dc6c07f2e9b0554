"""Forward-auth with the real proxies: Debian's nginx (``auth_request``) and Caddy
(``forward_auth``), each started on loopback from the examples in deploy/forward-auth/ in front
of a real upstream, asking a real gateway at ``/auth/verify``.

A missing proxy skips its tests with the reason; under ``CI=true`` it fails them
(``.ci/run`` installs both first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from bench.nginx import main_block
from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess, free_port
from tests.tokens import AUDIENCE, ISSUER, SigningKey
from tests.upstream import ServerThread, Upstream
from tests.waiting import eventually

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "deploy" / "forward-auth"
PUBLIC_URL = "http://shop.test"  # where browsers would reach the proxy; only the hint uses it


@dataclass
class Setup:
    """A gateway deciding for a proxy in front of an upstream."""

    proxy: str  # the proxy's base URL
    upstream: Upstream
    gateway: GatewayProcess
    key: SigningKey

    def get(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self.upstream.seen.clear()
        return httpx.get(self.proxy + path, headers=headers, timeout=10, follow_redirects=False)


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        reason = f"{name} is not installed (apt-get install {name})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI=true .ci/run must install it", pytrace=False)
        pytest.skip(reason)
    return found


def _gateway(folder: Path, upstream_port: int) -> tuple[GatewayProcess, SigningKey]:
    key = SigningKey(folder / "keys", "EdDSA")
    up = f"http://127.0.0.1:{upstream_port}"
    config = folder / "routes.yaml"
    config.write_text(
        config_yaml(
            server={
                "public_url": PUBLIC_URL,
                "trusted_proxies": ["127.0.0.1"],
                "admin": {"port": free_port()},
            },
            tokens={
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "keys": "./keys",
                "access_cookie": {"name": "gw_access"},
            },
            store="sqlite:///./data/gateway.db",
            identity_assertion={"header": "X-Gateway-Assertion", "ttl": "60s"},
            routes=[
                route("orders", "/orders", up, scopes=["orders:read"]),
                route("admin", "/admin", up, scopes=["admin"]),
                route("public", "/public", up, auth="public"),
            ],
        )
    )
    return GatewayProcess(config, free_port()), key


def _wait_for(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            httpx.get(url, timeout=1)
        except httpx.HTTPError:
            return False
        return True

    eventually(answers, timeout=20)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _nginx(folder: Path, port: int, gateway_port: int, upstream_port: int) -> list[str]:
    """deploy/forward-auth/nginx.conf on loopback ports, inside a minimal main block."""
    server = (
        (EXAMPLES / "nginx.conf")
        .read_text()
        .replace("listen 80;", f"listen 127.0.0.1:{port};")
        .replace("gateway:8080", f"127.0.0.1:{gateway_port}")
        .replace("app:8000", f"127.0.0.1:{upstream_port}")
    )
    (folder / "temp").mkdir()
    config = folder / "nginx.conf"
    config.write_text(main_block(folder, "1") + server + "}\n")
    return [_binary("nginx"), "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config)]


def _caddy(folder: Path, port: int, gateway_port: int, upstream_port: int) -> list[str]:
    """deploy/forward-auth/Caddyfile on a loopback port, without the admin API or HTTPS."""
    site = (
        (EXAMPLES / "Caddyfile")
        .read_text()
        .replace(":80 {", f"http://127.0.0.1:{port} {{\n\tbind 127.0.0.1")
        .replace("gateway:8080", f"127.0.0.1:{gateway_port}")
        .replace("app:8000", f"127.0.0.1:{upstream_port}")
    )
    config = folder / "Caddyfile"
    config.write_text("{\n\tadmin off\n\tauto_https off\n}\n\n" + site)
    return [_binary("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"]


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    name: str = request.param
    command = {"nginx": _nginx, "caddy": _caddy}[name]
    folder = tmp_path_factory.mktemp(name)
    app = Upstream()
    upstream_port, port = free_port(), free_port()
    with ServerThread(app, upstream_port):
        gateway, key = _gateway(folder, upstream_port)
        log = folder / "proxy.log"
        try:
            argv = command(folder, port, gateway.port, upstream_port)
            env = {**os.environ, "XDG_DATA_HOME": str(folder), "XDG_CONFIG_HOME": str(folder)}
            with open(log, "wb") as out:
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
            try:
                _wait_for(f"http://127.0.0.1:{port}/public", proc, log)
                yield Setup(f"http://127.0.0.1:{port}", app, gateway, key)
            finally:
                _stop(proc)
        finally:
            gateway.stop()


def test_no_token_is_401_through_the_proxy_and_nothing_reaches_the_upstream(
    setup: Setup,
) -> None:
    answer = setup.get("/orders/7")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="gateway"'
    assert setup.upstream.seen == []


def test_a_good_token_reaches_the_upstream_with_the_identity_and_a_valid_assertion(
    setup: Setup,
) -> None:
    answer = setup.get("/orders/7?x=1", setup.key.token(sid="family-7"))
    assert answer.status_code == 200
    [seen] = setup.upstream.seen
    assert (seen.path, seen.query) == ("/orders/7", b"x=1")
    assert seen.header_values("x-auth-subject") == ["alice"]
    assert seen.header_values("x-auth-scopes") == ["orders:read"]
    [assertion] = seen.header_values("x-gateway-assertion")
    keys = jwt.PyJWKClient(f"{setup.gateway.url}/.well-known/jwks.json")
    key = keys.get_signing_key_from_jwt(assertion)
    claims = jwt.decode(assertion, key, algorithms=["EdDSA"], audience="orders", issuer=ISSUER)
    assert (claims["sub"], claims["sid"], claims["scope"]) == ("alice", "family-7", "orders:read")
    assert jwt.get_unverified_header(assertion)["typ"] == "gateway-identity+jwt"


def test_identity_headers_from_the_client_never_reach_the_upstream(setup: Setup) -> None:
    forged = {"X-Auth-Subject": "mallory", "X-Gateway-Assertion": "forged"}
    setup.get("/orders/7", setup.key.token(), **forged)
    [seen] = setup.upstream.seen
    assert seen.header_values("x-auth-subject") == ["alice"]
    assert seen.header_values("x-gateway-assertion") != ["forged"]
    setup.get("/public/page", **forged)
    [seen] = setup.upstream.seen
    assert seen.header_values("x-auth-subject") == []
    assert seen.header_values("x-gateway-assertion") == []


def test_a_missing_scope_is_403_and_nothing_reaches_the_upstream(setup: Setup) -> None:
    answer = setup.get("/admin/users", setup.key.token(scope="orders:read"))
    assert answer.status_code == 403
    assert setup.upstream.seen == []


def test_a_navigation_without_a_token_is_redirected_to_the_gateways_sign_in(
    setup: Setup,
) -> None:
    answer = setup.get("/orders/7?tab=2", Accept="text/html,application/xhtml+xml")
    assert answer.status_code == 302
    assert answer.headers["location"] == f"{PUBLIC_URL}/auth/login?next=%2Forders%2F7%3Ftab%3D2"
    assert setup.upstream.seen == []


def test_the_sign_in_page_is_served_through_the_proxy(setup: Setup) -> None:
    answer = setup.get("/auth/login", Accept="text/html")
    assert answer.status_code == 200 and "text/html" in answer.headers["content-type"]


def test_a_spoofed_original_uri_from_the_client_cannot_reach_another_route(setup: Setup) -> None:
    spoofed = {"X-Forwarded-Uri": "/public", "X-Original-URI": "/public"}
    answer = setup.get("/admin/users", setup.key.token(scope="orders:read"), **spoofed)
    assert answer.status_code == 403
    assert setup.upstream.seen == []


def test_verify_itself_is_not_reachable_through_the_proxy(setup: Setup) -> None:
    # Through the proxy a client would be asking as the trusted proxy, and collect assertions.
    question = {"X-Original-Method": "GET", "X-Original-URI": "/orders"}
    answer = setup.get("/auth/verify", setup.key.token(), **question)
    assert answer.status_code == 404
    assert "x-gateway-assertion" not in answer.headers
