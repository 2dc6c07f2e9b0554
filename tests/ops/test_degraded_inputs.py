"""Each broken reloadable input is named on /readyz (degraded, 200) and /metrics, and recovers.

routes.yaml, the users file, a ``jwks_file``, the keys folder and a ``jwks_uri`` that starts
failing: while one is broken the last good state serves, ``/readyz`` gives one reason naming
that input and its file, ``gateway_input_degraded{input=...}`` is 1 (and the failures counter
rose), one log line names the file and the problem; the next good write clears it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from jwt.algorithms import RSAAlgorithm

from tests.configs import route
from tests.conftest import GatewayProcess, free_port
from tests.tokens import ISSUER, SigningKey, new_private_key
from tests.tokenservice.conftest import CHEAP
from tests.upstream import ServerThread, Upstream
from tests.waiting import eventually

FILE_IDP = "https://file-idp.test/"
URI_IDP = "https://uri-idp.test/"


def _jwk_set(key: Any, kid: str) -> dict[str, Any]:
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": kid, "alg": "RS256"}]}


class FlakyIdentityProvider:
    """A JWKS endpoint that can start failing (500) and come back."""

    def __init__(self) -> None:
        self.key = new_private_key("RS256")
        self.failing = False

    def token(self, kid: str) -> str:
        now = int(time.time())
        claims = {"iss": URI_IDP, "aud": "api", "sub": "ext", "iat": now, "exp": now + 300}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": kid})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        status, body = (500, b"{}") if self.failing else (200, b"")
        if not self.failing:
            body = json.dumps(_jwk_set(self.key, "uri-kid")).encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def idp() -> Iterator[tuple[FlakyIdentityProvider, int]]:
    provider = FlakyIdentityProvider()
    port = free_port()
    with ServerThread(provider, port):
        yield provider, port


@pytest.fixture
def gateway(
    idp: tuple[FlakyIdentityProvider, int],
    upstream: tuple[Upstream, int],
    start_gateway: Callable[..., GatewayProcess],
    tmp_path: Path,
) -> GatewayProcess:
    _, idp_port = idp
    _, port = upstream
    SigningKey(tmp_path / "keys")
    (tmp_path / "idp-jwks.json").write_text(
        json.dumps(_jwk_set(new_private_key("RS256"), "file-kid"))
    )
    users = {"users": {"dora": {"password_hash": CHEAP.hash("dora-passphrase"), "scopes": []}}}
    (tmp_path / "users.yaml").write_text(yaml.safe_dump(users))
    return start_gateway(
        {
            "tokens": {"issuer": ISSUER, "keys": "./keys"},
            "users": {"file": "./users.yaml"},
            "trusted_issuers": [
                {"issuer": FILE_IDP, "audience": "api", "jwks_file": "./idp-jwks.json"},
                {
                    "issuer": URI_IDP,
                    "audience": "api",
                    "jwks_uri": f"http://127.0.0.1:{idp_port}/jwks.json",
                },
            ],
            "routes": [route("api", "/api", f"http://127.0.0.1:{port}")],
        }
    )


def _readiness(gateway: GatewayProcess) -> dict[str, Any]:
    answer = httpx.get(f"{gateway.admin_url}/readyz")
    assert answer.status_code == 200  # degraded still serves
    body: dict[str, Any] = answer.json()
    return body


def _degraded_gauge(gateway: GatewayProcess) -> dict[str, float]:
    metrics = httpx.get(f"{gateway.admin_url}/metrics").text
    return {
        match.group(1): float(match.group(2))
        for match in re.finditer(r'^gateway_input_degraded\{input="(\w+)"\} (\S+)$', metrics, re.M)
    }


def _break_config(folder: Path) -> Callable[[], None]:
    path = folder / "routes.yaml"
    good = path.read_text()
    path.write_text(good + "  - name: [broken\n")
    return lambda: path.write_text(good + "\n# fixed\n")


def _break_keys(folder: Path) -> Callable[[], None]:
    broken = folder / "keys" / "zz-broken.pem"
    broken.write_text("not a key")
    return broken.unlink


def _break_jwks_file(folder: Path) -> Callable[[], None]:
    path = folder / "idp-jwks.json"
    good = path.read_text()
    path.write_text("{not json")
    return lambda: path.write_text(good)


def _break_users_file(folder: Path) -> Callable[[], None]:
    path = folder / "users.yaml"
    good = path.read_text()
    path.write_text("users: [unclosed\n")
    return lambda: path.write_text(good)


BREAKAGES = {
    "config": (_break_config, "configuration not reloaded", "routes.yaml"),
    "keys": (_break_keys, "keys folder not reloaded", "zz-broken.pem"),
    "jwks_file": (_break_jwks_file, "jwks_file not reloaded", "idp-jwks.json"),
    "users_file": (_break_users_file, "users file", "users.yaml"),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_a_broken_input_is_named_on_readyz_and_metrics_until_the_next_good_write(
    gateway: GatewayProcess, tmp_path: Path, name: str
) -> None:
    breakage, reason_starts, file_name = BREAKAGES[name]
    if name == "users_file":
        # The users file is read when a login needs it.
        login = {"username": "dora", "password": "dora-passphrase"}
        first = httpx.post(f"{gateway.url}/auth/login", json=login)
        assert first.status_code == 200, first.text
        repair = breakage(tmp_path)
        assert httpx.post(f"{gateway.url}/auth/login", json=login).status_code == 200
    else:
        repair = breakage(tmp_path)

    def named() -> list[str]:
        reasons: list[str] = _readiness(gateway).get("reasons", [])
        assert [r for r in reasons if r.startswith(reason_starts) and file_name in r], reasons
        return reasons

    reasons = eventually(named, timeout=5)
    assert len(reasons) == 1
    eventually(lambda: _degraded_gauge(gateway).get(name) == 1.0, timeout=5)
    assert any(file_name in line for line in gateway.stderr().splitlines())

    repair()
    if name == "users_file":
        assert httpx.post(f"{gateway.url}/auth/login", json=login).status_code == 200
    eventually(lambda: _readiness(gateway)["status"] == "ready", timeout=5)
    eventually(lambda: _degraded_gauge(gateway).get(name) == 0.0, timeout=5)


def test_two_broken_inputs_are_each_named(gateway: GatewayProcess, tmp_path: Path) -> None:
    _break_config(tmp_path)
    _break_keys(tmp_path)

    def both() -> list[str]:
        reasons: list[str] = _readiness(gateway).get("reasons", [])
        assert len(reasons) == 2, reasons
        return reasons

    reasons = eventually(both, timeout=5)
    assert reasons[0].startswith("configuration not reloaded")
    assert reasons[1].startswith("keys folder not reloaded")
    gauge = eventually(lambda: (g := _degraded_gauge(gateway))["keys"] == 1.0 and g, timeout=5)
    assert gauge["config"] == 1.0


def test_a_jwks_uri_that_starts_failing_is_degraded_until_it_answers_again(
    gateway: GatewayProcess, idp: tuple[FlakyIdentityProvider, int]
) -> None:
    provider, _ = idp
    known = {"Authorization": f"Bearer {provider.token('uri-kid')}"}
    eventually(lambda: httpx.get(f"{gateway.url}/api/x", headers=known).status_code == 200)
    provider.failing = True
    # A token with a kid it does not know makes the gateway fetch the key set again.
    unknown = {"Authorization": f"Bearer {provider.token(uuid.uuid4().hex[:8])}"}
    assert httpx.get(f"{gateway.url}/api/x", headers=unknown).status_code == 401

    def named() -> list[str]:
        reasons: list[str] = _readiness(gateway).get("reasons", [])
        assert [r for r in reasons if r.startswith(f"jwks_uri of {URI_IDP}")], reasons
        return reasons

    eventually(named, timeout=5)
    assert httpx.get(f"{gateway.url}/api/x", headers=known).status_code == 200  # last good keys
    eventually(lambda: _degraded_gauge(gateway).get("jwks_uri") == 1.0, timeout=5)
    assert f"JWKS fetch for issuer {URI_IDP} failed" in gateway.stderr()

    provider.failing = False  # retried within seconds, not at the next 10-minute refresh
    eventually(lambda: _readiness(gateway)["status"] == "ready", timeout=10)
