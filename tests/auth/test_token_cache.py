"""The verified-token cache: hits skip verification, entries die at exp, size stays bounded."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.auth import Failure, IssuerPolicy, JwksSource, TokenError, Verifier
from gateway.auth.jwks import parse_jwks
from gateway.auth.keys import VerificationKey
from gateway.auth.token_cache import CachedToken, TokenCache

from .conftest import AUDIENCE, IDP, NOW, Clock, Forge


class CountingSource:
    """A KeySource that counts lookups, i.e. full verifications."""

    def __init__(self, inner: JwksSource) -> None:
        self.inner = inner
        self.lookups = 0

    async def get(self, kid: str | None) -> VerificationKey | None:
        self.lookups += 1
        return await self.inner.get(kid)


@pytest.fixture
def source(idp_jwks: dict[str, Any]) -> CountingSource:
    return CountingSource(JwksSource(IDP, keys=parse_jwks(idp_jwks)))


def make_verifier(source: CountingSource, clock: Clock, **options: Any) -> Verifier:
    policy = IssuerPolicy(
        issuer=IDP,
        audience=AUDIENCE,
        algorithms=frozenset({"RS256", "ES256"}),
        max_lifetime=3600,
        required_typ=None,
        keys=source,
    )
    return Verifier({IDP: policy}, clock=clock, **{"leeway": 0, **options})


async def test_hit_returns_the_same_claims_without_reverifying(
    source: CountingSource, forge: Forge, clock: Clock
) -> None:
    verifier = make_verifier(source, clock)
    token = forge.token("ec-1")
    first = await verifier.verify(token)
    second = await verifier.verify(token)
    assert second is first
    assert source.lookups == 1


async def test_entry_is_not_served_after_exp(
    source: CountingSource, forge: Forge, clock: Clock
) -> None:
    verifier = make_verifier(source, clock)
    token = forge.token("ec-1", exp=int(NOW) + 60)
    await verifier.verify(token)
    clock.advance(60)
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token)
    assert caught.value.failure is Failure.EXPIRED
    assert source.lookups == 2
    assert len(verifier.cache) == 0


async def test_cache_never_exceeds_its_bound(
    source: CountingSource, forge: Forge, clock: Clock
) -> None:
    verifier = make_verifier(source, clock, cache_size=16)
    for n in range(100):
        await verifier.verify(forge.token("ec-1", jti=str(n)))
        assert len(verifier.cache) <= 16


async def test_refused_tokens_are_not_cached(
    source: CountingSource, forge: Forge, clock: Clock
) -> None:
    verifier = make_verifier(source, clock)
    with pytest.raises(TokenError):
        await verifier.verify(forge.token("ec-1", aud="other"))
    assert len(verifier.cache) == 0


async def test_cache_size_zero_turns_caching_off(
    source: CountingSource, forge: Forge, clock: Clock
) -> None:
    verifier = make_verifier(source, clock, cache_size=0)
    token = forge.token("ec-1")
    await verifier.verify(token)
    await verifier.verify(token)
    assert source.lookups == 2 and len(verifier.cache) == 0


def test_eviction_drops_the_oldest_entries_first() -> None:
    cache = TokenCache(8)
    for n in range(9):
        cache.put(f"t{n}", CachedToken(NOW + 60, None, {}))
    assert cache.get("t0", NOW) is None
    assert cache.get("t8", NOW) is not None
    assert len(cache) <= 8


def test_a_million_distinct_tokens_keep_the_cache_bounded() -> None:
    cache = TokenCache(10_000)
    entry = CachedToken(NOW + 60, None, {})
    for n in range(1_000_000):
        cache.put(f"token-{n}", entry)
    assert len(cache) <= 10_000


async def test_token_inside_the_leeway_after_exp_is_accepted_but_not_cached(
    source: CountingSource, forge: Forge, clock: Clock
) -> None:
    verifier = make_verifier(source, clock, leeway=30)
    token = forge.token("ec-1", exp=int(NOW) - 10)
    assert await verifier.verify(token)
    assert len(verifier.cache) == 0
