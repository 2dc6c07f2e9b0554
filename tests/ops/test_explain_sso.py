"""``gateway explain`` knows the single sign-on endpoints and their providers."""

from __future__ import annotations

import pytest

from gateway.ops.explain import explain
from tests.configs import build_config

CONFIG = build_config(
    login={
        "providers": [
            {"name": "corp", "issuer": "https://idp.example.com", "client_id": "gateway"},
        ]
    }
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/auth/oidc/corp/start", "starts single sign-on", id="start"),
        pytest.param("/auth/oidc/corp/callback", "exchanges the code", id="callback"),
        pytest.param("/auth/oidc/nope/start", "'nope' is not configured", id="unknown provider"),
        pytest.param("/auth/oidc/corp/backchannel-logout", "404", id="back-channel off"),
    ],
)
async def test_explain_names_the_sso_endpoint(path: str, expected: str) -> None:
    lines = await explain(CONFIG, "GET", path, None, now=0)
    assert any(expected in line for line in lines), lines


async def test_explain_names_the_provider_and_its_client() -> None:
    lines = await explain(CONFIG, "GET", "/auth/oidc/corp/start", None, now=0)
    assert any("issuer https://idp.example.com, client_id gateway" in line for line in lines)
