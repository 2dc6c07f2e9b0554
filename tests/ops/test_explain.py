"""``gateway explain`` names the route, the upstream URL, and why a token would be refused."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.configs import config_yaml, route
from tests.tokens import AUDIENCE, ISSUER, SigningKey

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, SigningKey]:
    key = SigningKey(tmp_path / "keys", "EdDSA")
    config = tmp_path / "routes.yaml"
    config.write_text(
        config_yaml(
            tokens={"issuer": ISSUER, "audience": AUDIENCE, "keys": "./keys", "leeway": 0},
            routes=[
                route("api", "/api", "http://10.0.0.1:9000"),
                route(
                    "orders",
                    "/api/orders",
                    "http://10.0.0.2:9000/v2",
                    scopes=["orders:read", "orders:write"],
                ),
                route("tenant", "/tenant", "http://10.0.0.3:9000", claims={"tenant": "acme"}),
                route("live", "/live", "http://10.0.0.4:9000", websocket=True),
            ],
        )
    )
    return config, key


def explain(config: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "explain", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_names_the_route_the_normalised_path_and_the_upstream_url(
    setup: tuple[Path, SigningKey],
) -> None:
    config, _ = setup
    out = explain(config, "GET", "/api/x/../orders//12?q=1")
    assert "normalised path: /api/orders/12" in out
    assert "route: orders" in out
    assert "also matched, shorter: /api" in out
    assert "upstream: http://10.0.0.2:9000/v2/api/orders/12?q=1" in out


def test_says_whether_the_route_accepts_websockets(setup: tuple[Path, SigningKey]) -> None:
    config, _ = setup
    assert "websocket: upgrades accepted" in explain(config, "GET", "/live/feed")
    assert "websocket: not accepted" in explain(config, "GET", "/api/x")


def test_says_no_route_when_nothing_matches(setup: tuple[Path, SigningKey]) -> None:
    config, _ = setup
    assert "no route" in explain(config, "GET", "/elsewhere")


def test_a_passing_token_passes(setup: tuple[Path, SigningKey]) -> None:
    config, key = setup
    token = key.token(scope="orders:read orders:write")
    out = explain(config, "GET", "/api/orders", "--token", token)
    assert "token: passes" in out
    assert token not in out


def test_an_expired_token_says_by_how_long(setup: tuple[Path, SigningKey]) -> None:
    config, key = setup
    token = key.token(ttl=-300, iat=int(time.time()) - 600)
    out = explain(config, "GET", "/api/orders", "--token", token)
    assert "401 invalid_token: expired 5m ago" in out


def test_a_missing_scope_is_named(setup: tuple[Path, SigningKey]) -> None:
    config, key = setup
    out = explain(config, "GET", "/api/orders", "--token", key.token(scope="orders:read"))
    assert "403 insufficient_scope: missing orders:write" in out


def test_a_differing_claim_is_named(setup: tuple[Path, SigningKey]) -> None:
    config, key = setup
    out = explain(config, "GET", "/tenant", "--token", key.token(tenant="globex"))
    assert "claim tenant is 'globex', the route requires 'acme'" in out


def test_a_token_from_an_unknown_issuer_is_named(setup: tuple[Path, SigningKey]) -> None:
    config, key = setup
    out = explain(config, "GET", "/api", "--token", key.token(iss="https://other.test"))
    assert "issuer 'https://other.test' is not one of" in out
