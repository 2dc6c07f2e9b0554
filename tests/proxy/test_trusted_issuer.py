"""Tokens of an external identity provider, verified through its JWKS (docs/configuration.md#trusted_issuers)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from jwt.algorithms import RSAAlgorithm

from tests.configs import route
from tests.conftest import GatewayProcess, free_port
from tests.tokens import new_private_key
from tests.upstream import ServerThread, Upstream

IDP = "https://idp.test/"


class IdentityProvider:
    """A JWKS endpoint on 127.0.0.1 serving the public halves of the keys it signs with."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0

    def add_key(self) -> str:
        kid = uuid.uuid4().hex[:8]
        self.keys[kid] = new_private_key("RS256")
        return kid

    def token(self, kid: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": IDP, "aud": "api", "sub": "ext-user", "iat": now, "exp": now + 300}
        payload.update(claims)
        return jwt.encode(payload, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.fetches += 1
        document = {
            "keys": [
                {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "RS256"}
                for kid, key in self.keys.items()
            ]
        }
        body = json.dumps(document).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def idp() -> Iterator[tuple[IdentityProvider, int]]:
    provider = IdentityProvider()
    provider.add_key()
    port = free_port()
    with ServerThread(provider, port):
        yield provider, port


def test_an_idp_token_passes_and_a_rotated_idp_key_is_fetched_on_first_use(
    idp: tuple[IdentityProvider, int],
    upstream: tuple[Upstream, int],
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    provider, idp_port = idp
    _, port = upstream
    gateway = start_gateway(
        {
            "trusted_issuers": [
                {
                    "issuer": IDP,
                    "audience": "api",
                    "algorithms": ["RS256"],
                    "jwks_uri": f"http://127.0.0.1:{idp_port}/jwks.json",
                }
            ],
            "routes": [route("api", "/api", f"http://127.0.0.1:{port}")],
        }
    )
    first_kid = next(iter(provider.keys))
    ok = httpx.get(
        f"{gateway.url}/api/x", headers={"Authorization": f"Bearer {provider.token(first_kid)}"}
    )
    assert ok.status_code == 200
    assert dict(ok.json()["headers"])["x-auth-subject"] == "ext-user"
    assert httpx.get(f"{gateway.admin_url}/readyz").status_code == 200

    new_kid = provider.add_key()  # the IdP rotates; the gateway has never seen this kid
    rotated = httpx.get(
        f"{gateway.url}/api/x", headers={"Authorization": f"Bearer {provider.token(new_kid)}"}
    )
    assert rotated.status_code == 200

    wrong_audience = httpx.get(
        f"{gateway.url}/api/x",
        headers={"Authorization": f"Bearer {provider.token(new_kid, aud='other')}"},
    )
    assert wrong_audience.status_code == 401
