"""SessionService over a real SQLite store, with the clock injected: lifetimes without sleeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest

from gateway.auth.issuer import TokenIssuer
from gateway.auth.keys import KeyRing, generate_key
from gateway.config import TokensConfig
from gateway.store import open_store
from gateway.tokenservice.sessions import Grant, InvalidGrant, Refused, SessionService
from gateway.tokenservice.users import Identity

T0 = 1_900_000_000.0
TOKENS = TokensConfig(
    issuer="http://gateway.test",
    access_ttl=60,
    refresh_ttl=1000,
    refresh_idle_ttl=100,
    refresh_reuse_grace=10,
)
ALICE = Identity("alice", "orders:read", {"tenant": "acme"})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sessions(tmp_path: Path, clock: Clock) -> AsyncIterator[SessionService]:
    generate_key(tmp_path / "keys", "EdDSA")
    keyring = KeyRing.load(tmp_path / "keys")
    issuer = TokenIssuer(
        keyring, issuer=TOKENS.issuer, audience="api", access_ttl=TOKENS.access_ttl, clock=clock
    )
    async with open_store("sqlite:///sessions.db", base_dir=tmp_path) as store:
        yield SessionService(store, issuer, TOKENS, clock=clock)


def claims(grant: Grant) -> dict[str, object]:
    return dict(jwt.decode(grant.access_token, options={"verify_signature": False}))


async def test_login_mints_a_token_of_the_new_session(sessions: SessionService) -> None:
    grant = await sessions.login(ALICE)
    assert grant.refresh_token is not None and len(grant.refresh_token) == 43
    assert grant.refresh_max_age == 1000 and grant.expires_in == 60
    assert claims(grant)["sid"] == grant.sid
    assert claims(grant)["scope"] == "orders:read" and claims(grant)["tenant"] == "acme"


async def test_a_refresh_keeps_sub_scope_claims_and_sid(sessions: SessionService) -> None:
    first = await sessions.login(ALICE)
    second = await sessions.refresh(first.refresh_token)
    assert second.refresh_token not in (None, first.refresh_token)
    assert claims(second)["sid"] == first.sid
    assert {k: claims(second)[k] for k in ("sub", "scope", "tenant")} == {
        "sub": "alice",
        "scope": "orders:read",
        "tenant": "acme",
    }


async def test_the_cookie_max_age_is_the_sessions_remaining_life(
    sessions: SessionService, clock: Clock
) -> None:
    grant = await sessions.login(ALICE)
    clock.now += 90
    assert (await sessions.refresh(grant.refresh_token)).refresh_max_age == 910


async def test_a_token_unused_for_the_idle_lifetime_is_dead(
    sessions: SessionService, clock: Clock
) -> None:
    grant = await sessions.login(ALICE)
    clock.now += 100
    with pytest.raises(InvalidGrant) as refused:
        await sessions.refresh(grant.refresh_token)
    assert refused.value.reason is Refused.INVALID


async def test_a_session_dies_at_its_absolute_lifetime_however_often_it_is_refreshed(
    sessions: SessionService, clock: Clock
) -> None:
    grant = await sessions.login(ALICE)
    token = grant.refresh_token
    while clock.now + 90 < T0 + 1000:
        clock.now += 90
        token = (await sessions.refresh(token)).refresh_token
    clock.now = T0 + 1000
    with pytest.raises(InvalidGrant):
        await sessions.refresh(token)


async def test_the_previous_token_within_the_grace_window_gets_the_rotations_own_token(
    sessions: SessionService, clock: Clock
) -> None:
    first = await sessions.login(ALICE)
    second = await sessions.refresh(first.refresh_token)
    clock.now += 10
    grace = await sessions.refresh(first.refresh_token)
    assert grace.grace and grace.sid == first.sid
    assert grace.refresh_token == second.refresh_token
    assert (await sessions.refresh(second.refresh_token)).refresh_token is not None


async def test_a_successor_cannot_be_told_without_the_keys(sessions: SessionService) -> None:
    first = await sessions.login(ALICE)
    second = await sessions.refresh(first.refresh_token)
    assert second.refresh_token is not None and len(second.refresh_token) == 43
    assert second.refresh_token != first.refresh_token
    assert sessions.successor(first.refresh_token) == second.refresh_token


async def test_the_previous_token_after_the_grace_window_revokes_the_family(
    sessions: SessionService, clock: Clock
) -> None:
    first = await sessions.login(ALICE)
    second = await sessions.refresh(first.refresh_token)
    clock.now += 10.5
    with pytest.raises(InvalidGrant) as refused:
        await sessions.refresh(first.refresh_token)
    assert refused.value.reason is Refused.REUSED
    assert refused.value.sid == first.sid and refused.value.sub == "alice"
    with pytest.raises(InvalidGrant):
        await sessions.refresh(second.refresh_token)
    revoked = await sessions.store.revocations(since=T0, now=clock.now)
    assert [sid for sid, _ in revoked] == [first.sid]


async def test_logout_revokes_the_family_and_names_it(sessions: SessionService) -> None:
    grant = await sessions.login(ALICE)
    assert await sessions.logout(grant.refresh_token) == grant.sid
    with pytest.raises(InvalidGrant):
        await sessions.refresh(grant.refresh_token)


async def test_revoke_subject_ends_only_that_users_sessions(sessions: SessionService) -> None:
    mine = [await sessions.login(ALICE) for _ in range(2)]
    other = await sessions.login(Identity("bob", ""))
    assert sorted(await sessions.revoke_subject("alice")) == sorted(g.sid for g in mine)
    assert (await sessions.refresh(other.refresh_token)).sub == "bob"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(None, Refused.MISSING, id="no token"),
        pytest.param("", Refused.MISSING, id="empty"),
        pytest.param("short", Refused.INVALID, id="wrong length"),
        pytest.param("!" * 43, Refused.INVALID, id="wrong alphabet"),
        pytest.param("A" * 43, Refused.INVALID, id="unknown"),
    ],
)
async def test_a_token_that_cannot_be_ours_is_refused(
    sessions: SessionService, token: str | None, reason: Refused
) -> None:
    with pytest.raises(InvalidGrant) as refused:
        await sessions.refresh(token)
    assert refused.value.reason is reason
