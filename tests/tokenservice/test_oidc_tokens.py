"""ID tokens the gateway must refuse, each one really signed by a real OpenID provider."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from gateway.config import OidcProviderConfig
from gateway.tokenservice.oidc_flow import Flow
from gateway.tokenservice.oidc_provider import OidcProvider
from gateway.tokenservice.oidc_tokens import OidcTokenError, validate
from tests.oidc_provider import SECRET, client, provider_login, run_provider


def id_token_for(issuer: str, client_id: str, redirect_uri: str, nonce: str = "n") -> str:
    """A real ID token for ``client_id``, through the provider's login and token endpoint."""
    flow = Flow.begin("corp", "/", now=time.time())
    with httpx.Client(timeout=10) as http:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid",
                "state": "s",
                "nonce": nonce,
                "code_challenge": flow.challenge,
                "code_challenge_method": "S256",
            }
        )
        back = provider_login(http, f"{issuer}/auth?{query}", "alice")
        code = parse_qs(urlsplit(back).query)["code"][0]
        answer = http.post(
            f"{issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": flow.verifier,
            },
            auth=(client_id, SECRET),
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id_token"])


async def check(issuer: str, token: str, *, nonce: str = "n") -> dict[str, object]:
    """Validate ``token`` as the gateway does for a provider ``corp`` at ``issuer``."""
    async with httpx.AsyncClient() as http:
        provider = OidcProvider(
            OidcProviderConfig(name="corp", issuer=issuer, client_id="gateway"), http, leeway=0
        )
        assert await provider.discover()
        rules = provider.rules()
        assert rules is not None
        return await validate(token, rules, nonce=nonce)


URL = "http://127.0.0.1:1"


@pytest.fixture(scope="module")
def two_providers() -> Iterator[tuple[str, str]]:
    clients = [client(URL), client(URL, client_id="other", name="other")]
    with run_provider(clients) as first, run_provider(clients) as second:
        yield first.issuer, second.issuer


async def test_a_token_the_provider_signed_passes(two_providers: tuple[str, str]) -> None:
    issuer, _ = two_providers
    token = id_token_for(issuer, "gateway", f"{URL}/auth/oidc/corp/callback")
    assert (await check(issuer, token))["sub"] == "alice"


async def test_an_id_token_for_another_audience_is_refused(two_providers: tuple[str, str]) -> None:
    issuer, _ = two_providers
    token = id_token_for(issuer, "other", f"{URL}/auth/oidc/other/callback")
    with pytest.raises(OidcTokenError, match="aud"):
        await check(issuer, token)


async def test_an_id_token_from_another_issuer_is_refused(two_providers: tuple[str, str]) -> None:
    issuer, elsewhere = two_providers
    token = id_token_for(elsewhere, "gateway", f"{URL}/auth/oidc/corp/callback")
    with pytest.raises(OidcTokenError):
        await check(issuer, token)


async def test_an_expired_id_token_is_refused() -> None:
    with run_provider([client(URL)], id_token_ttl=1) as provider:
        token = id_token_for(provider.issuer, "gateway", f"{URL}/auth/oidc/corp/callback")
        time.sleep(2.1)  # the point of the test: the token's 1 s life must pass
        with pytest.raises(OidcTokenError, match="expired"):
            await check(provider.issuer, token)


async def test_a_wrong_nonce_is_refused(two_providers: tuple[str, str]) -> None:
    issuer, _ = two_providers
    token = id_token_for(issuer, "gateway", f"{URL}/auth/oidc/corp/callback")
    with pytest.raises(OidcTokenError, match="nonce"):
        await check(issuer, token, nonce="another")


async def test_a_nonce_that_is_not_ascii_is_refused_like_any_wrong_one(
    two_providers: tuple[str, str],
) -> None:
    issuer, _ = two_providers
    token = id_token_for(issuer, "gateway", f"{URL}/auth/oidc/corp/callback", nonce="né")
    with pytest.raises(OidcTokenError, match="nonce"):
        await check(issuer, token, nonce="n")
