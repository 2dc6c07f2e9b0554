"""Links from a provider's session to gateway families (back-channel logout), on every backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store import RefreshStore
from gateway.store.session_links import link_key
from gateway.store.sqlite import SQLiteStore
from tests.store.test_conformance import DAY, INVALID, NOW, ROTATED, login, rotate

PROVIDER_SESSION = link_key("corp", "sid", "provider-session-1")
PROVIDER_USER = link_key("corp", "sub", "alice")


async def test_revoke_linked_revokes_every_family_of_that_link(store: RefreshStore) -> None:
    first, first_token = await login(store)
    second, second_token = await login(store)
    other, other_token = await login(store)
    await store.link_session(sid=first, links=[PROVIDER_SESSION, PROVIDER_USER])
    await store.link_session(sid=second, links=[PROVIDER_SESSION, PROVIDER_USER])
    await store.link_session(sid=other, links=[link_key("corp", "sid", "another-session")])
    revoked = await store.revoke_linked(link=PROVIDER_SESSION, now=NOW + 1)
    assert sorted(revoked) == sorted([first, second])
    assert (await rotate(store, first_token, now=NOW + 2))[0].outcome is INVALID
    assert (await rotate(store, second_token, now=NOW + 2))[0].outcome is INVALID
    assert (await rotate(store, other_token, now=NOW + 2))[0].outcome is ROTATED


async def test_revoke_linked_feeds_the_revocation_list(store: RefreshStore) -> None:
    sid, _ = await login(store)
    await store.link_session(sid=sid, links=[PROVIDER_USER])
    await store.revoke_linked(link=PROVIDER_USER, now=NOW + 5)
    assert (sid, NOW + 5) in await store.revocations(since=NOW, now=NOW + 6)


async def test_revoke_linked_twice_or_unknown_revokes_nothing(store: RefreshStore) -> None:
    sid, _ = await login(store)
    await store.link_session(sid=sid, links=[PROVIDER_USER])
    assert await store.revoke_linked(link=PROVIDER_USER, now=NOW + 1) == [sid]
    assert await store.revoke_linked(link=PROVIDER_USER, now=NOW + 2) == []
    assert await store.revoke_linked(link=link_key("corp", "sub", "nobody"), now=NOW + 2) == []


async def test_an_expired_family_is_not_reported_revoked(store: RefreshStore) -> None:
    sid, _ = await login(store, absolute_ttl=10)
    await store.link_session(sid=sid, links=[PROVIDER_USER])
    assert await store.revoke_linked(link=PROVIDER_USER, now=NOW + DAY) == []


async def test_a_sqlite_database_made_before_links_gains_them(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE gw_families (sid TEXT PRIMARY KEY, sub TEXT NOT NULL, data TEXT NOT NULL,"
        " created_at REAL NOT NULL, expires_at REAL NOT NULL, current_hash TEXT NOT NULL,"
        " previous_hash TEXT, rotated_at REAL, revoked_at REAL)"
    )
    old.execute(
        "INSERT INTO gw_families VALUES ('kept', 'alice', '{}', ?, ?, 'h', NULL, NULL, NULL)",
        (NOW, NOW + DAY),
    )
    old.commit()
    old.close()
    async with SQLiteStore(path) as store:
        await store.link_session(sid="kept", links=[PROVIDER_USER])
        assert await store.revoke_linked(link=PROVIDER_USER, now=NOW + 1) == ["kept"]
