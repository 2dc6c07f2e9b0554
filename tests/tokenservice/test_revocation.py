"""The revoked-sid set and the feed that fills it from the store (clock injected)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.auth.revocation import RevocationFeed, RevocationSet
from gateway.store import RefreshStore, StoreUnavailable, hash_token, open_store

T0 = 1_900_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RefreshStore]:
    async with open_store("sqlite:///revocations.db", base_dir=tmp_path) as opened:
        yield opened


async def start(store: RefreshStore, sid: str, sub: str, now: float) -> None:
    await store.start_session(
        sid=sid,
        sub=sub,
        token_hash=hash_token(sid + "-token"),
        data="{}",
        now=now,
        absolute_ttl=3600,
        idle_ttl=3600,
    )


def test_a_revocation_is_forgotten_once_every_access_token_has_expired() -> None:
    revoked = RevocationSet(keep=60)
    revoked.add("s1", T0)
    revoked.prune(T0 + 59)
    assert "s1" in revoked
    revoked.prune(T0 + 60)
    assert "s1" not in revoked


def test_a_failing_listener_does_not_keep_the_others_from_hearing_of_a_revocation() -> None:
    revoked = RevocationSet(keep=60)
    heard: list[str] = []

    def broken(sid: str) -> None:
        raise RuntimeError("a bug in one listener")

    revoked.subscribe(broken)
    revoked.subscribe(heard.append)
    revoked.add("s1", T0)
    assert heard == ["s1"] and "s1" in revoked


async def test_a_poll_learns_revocations_made_by_anyone(store: RefreshStore) -> None:
    clock = Clock()
    revoked = RevocationSet(keep=60)
    feed = RevocationFeed(store, revoked, clock=clock)
    await start(store, "s1", "alice", T0)
    await feed.poll()
    assert "s1" not in revoked
    await store.revoke_subject(sub="alice", now=T0 + 1)
    clock.now = T0 + 1.5
    await feed.poll()
    assert "s1" in revoked


async def test_the_first_poll_reaches_back_as_long_as_revocations_matter(
    store: RefreshStore,
) -> None:
    await start(store, "old", "alice", T0)
    await start(store, "recent", "bob", T0)
    await store.revoke_subject(sub="alice", now=T0 + 10)
    await store.revoke_subject(sub="bob", now=T0 + 50)
    clock = Clock()
    clock.now = T0 + 75  # keep=60: alice's revocation no longer matters, bob's does
    revoked = RevocationSet(keep=60)
    await RevocationFeed(store, revoked, clock=clock).poll()
    assert "recent" in revoked and "old" not in revoked


class DownStore:
    """A store whose every call fails as an unreachable one does."""

    async def revocations(self, *, since: float, now: float) -> list[tuple[str, float]]:
        raise StoreUnavailable("Redis store at 127.0.0.1:1 unavailable: ConnectionError")


async def test_an_outage_is_logged_once_and_polling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed = RevocationFeed(DownStore(), RevocationSet(keep=60), interval=0.01)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="gateway.auth.revocation"):
        task = asyncio.create_task(feed.run())
        await feed.wait_first_poll(1)
        await asyncio.sleep(0.1)
        task.cancel()
    assert feed.first_poll.is_set()
    assert [r.getMessage() for r in caplog.records] == [
        "revocation updates paused: Redis store at 127.0.0.1:1 unavailable: ConnectionError "
        "(retrying)"
    ]
