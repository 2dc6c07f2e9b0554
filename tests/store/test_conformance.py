"""One behaviour per test, run against every store backend (SQLite, Redis, PostgreSQL).

Time is injected through `now`: expiry and grace are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid

import pytest

from gateway.store import (
    DEFAULT_REVOCATION_RETENTION,
    RefreshStore,
    Rotation,
    RotationOutcome,
    StoreError,
    hash_token,
)

NOW = 1_700_000_000.0
DAY = 86_400.0
GRACE = 10.0
DATA = json.dumps({"scope": "orders:read", "claims": {"tenant": "acme"}})

ROTATED = RotationOutcome.ROTATED
GRACED = RotationOutcome.GRACE
REUSED = RotationOutcome.REUSED
INVALID = RotationOutcome.INVALID


def new_hash() -> str:
    return hash_token(secrets.token_urlsafe(32))


async def login(
    store: RefreshStore,
    *,
    sub: str = "alice",
    now: float = NOW,
    absolute_ttl: float = 7 * DAY,
    idle_ttl: float = DAY,
) -> tuple[str, str]:
    """A new family; its sid and first token hash."""
    sid, token_hash = uuid.uuid4().hex, new_hash()
    await store.start_session(
        sid=sid,
        sub=sub,
        token_hash=token_hash,
        data=DATA,
        now=now,
        absolute_ttl=absolute_ttl,
        idle_ttl=idle_ttl,
    )
    return sid, token_hash


async def rotate(
    store: RefreshStore, token_hash: str, *, now: float, idle_ttl: float = DAY
) -> tuple[Rotation, str]:
    """Present `token_hash`; the answer and the hash offered as its successor."""
    successor = new_hash()
    rotation = await store.rotate(
        token_hash=token_hash, new_token_hash=successor, now=now, idle_ttl=idle_ttl, grace=GRACE
    )
    return rotation, successor


# -- rotation -----------------------------------------------------------------------------


async def test_rotating_the_current_token_returns_the_session(store: RefreshStore) -> None:
    sid, token = await login(store)
    rotation, _ = await rotate(store, token, now=NOW + 60)
    assert rotation == Rotation(ROTATED, sid, "alice", DATA, NOW + 7 * DAY)


async def test_the_new_token_rotates_in_turn(store: RefreshStore) -> None:
    sid, token = await login(store)
    _, second = await rotate(store, token, now=NOW + 60)
    rotation, _ = await rotate(store, second, now=NOW + 120)
    assert (rotation.outcome, rotation.sid) == (ROTATED, sid)


async def test_previous_token_within_grace_is_grace_and_changes_nothing(
    store: RefreshStore,
) -> None:
    sid, token = await login(store)
    _, second = await rotate(store, token, now=NOW + 60)
    rotation, offered = await rotate(store, token, now=NOW + 60 + GRACE)
    assert rotation == Rotation(GRACED, sid, "alice", DATA, NOW + 7 * DAY)
    assert (await rotate(store, offered, now=NOW + 61))[0].outcome is INVALID
    assert (await rotate(store, second, now=NOW + 61))[0].outcome is ROTATED


async def test_previous_token_after_grace_is_reused_and_revokes_the_family(
    store: RefreshStore,
) -> None:
    sid, token = await login(store)
    _, second = await rotate(store, token, now=NOW + 60)
    rotation, _ = await rotate(store, token, now=NOW + 60 + GRACE + 0.5)
    assert (rotation.outcome, rotation.sid, rotation.sub) == (REUSED, sid, "alice")
    assert (await rotate(store, second, now=NOW + 80))[0].outcome is INVALID


async def test_token_older_than_previous_is_reused_at_once(store: RefreshStore) -> None:
    sid, first = await login(store)
    _, second = await rotate(store, first, now=NOW + 1)
    _, third = await rotate(store, second, now=NOW + 2)
    rotation, _ = await rotate(store, first, now=NOW + 2)
    assert (rotation.outcome, rotation.sid) == (REUSED, sid)
    assert (await rotate(store, third, now=NOW + 3))[0].outcome is INVALID


async def test_reused_token_presented_again_is_invalid(store: RefreshStore) -> None:
    _, first = await login(store)
    await rotate(store, first, now=NOW + 1)
    await rotate(store, first, now=NOW + 100)
    assert (await rotate(store, first, now=NOW + 101))[0].outcome is INVALID


async def test_unknown_token_is_invalid(store: RefreshStore) -> None:
    await login(store)
    rotation, _ = await rotate(store, new_hash(), now=NOW + 1)
    assert rotation == Rotation(INVALID)


async def test_concurrent_rotations_of_one_token_rotate_once(store: RefreshStore) -> None:
    _, token = await login(store)
    answers = await asyncio.gather(*(rotate(store, token, now=NOW + 5) for _ in range(20)))
    outcomes = sorted(rotation.outcome.value for rotation, _ in answers)
    assert outcomes == ["grace"] * 19 + ["rotated"]
    [winner] = [successor for rotation, successor in answers if rotation.outcome is ROTATED]
    assert (await rotate(store, winner, now=NOW + 6))[0].outcome is ROTATED


async def test_start_session_refuses_an_existing_sid(store: RefreshStore) -> None:
    sid, _ = await login(store)
    with pytest.raises(StoreError):
        await store.start_session(
            sid=sid,
            sub="mallory",
            token_hash=new_hash(),
            data="{}",
            now=NOW,
            absolute_ttl=DAY,
            idle_ttl=DAY,
        )


# -- expiry -------------------------------------------------------------------------------


async def test_family_dies_at_its_absolute_expiry(store: RefreshStore) -> None:
    _, token = await login(store, absolute_ttl=100, idle_ttl=1000)
    rotation, second = await rotate(store, token, now=NOW + 99, idle_ttl=1000)
    assert rotation.outcome is ROTATED
    assert (await rotate(store, second, now=NOW + 100))[0].outcome is INVALID


async def test_token_dies_at_its_idle_expiry(store: RefreshStore) -> None:
    _, token = await login(store, idle_ttl=60)
    assert (await rotate(store, token, now=NOW + 60))[0].outcome is INVALID


async def test_token_used_just_before_idle_expiry_rotates(store: RefreshStore) -> None:
    _, token = await login(store, idle_ttl=60)
    assert (await rotate(store, token, now=NOW + 59.5))[0].outcome is ROTATED


async def test_rotated_token_idle_expiry_counts_from_its_rotation(store: RefreshStore) -> None:
    _, token = await login(store, idle_ttl=60)
    _, second = await rotate(store, token, now=NOW + 50, idle_ttl=60)
    assert (await rotate(store, second, now=NOW + 109))[0].outcome is ROTATED
    _, other = await login(store, idle_ttl=60)
    _, other_second = await rotate(store, other, now=NOW + 50, idle_ttl=60)
    assert (await rotate(store, other_second, now=NOW + 110))[0].outcome is INVALID


async def test_rotated_token_idle_expiry_is_capped_by_absolute_expiry(
    store: RefreshStore,
) -> None:
    _, token = await login(store, absolute_ttl=100, idle_ttl=80)
    _, second = await rotate(store, token, now=NOW + 50, idle_ttl=80)
    # Idle alone would allow it until NOW + 130; the family's end comes first.
    assert (await rotate(store, second, now=NOW + 100, idle_ttl=80))[0].outcome is INVALID


async def test_previous_token_is_invalid_once_the_family_expired(store: RefreshStore) -> None:
    _, token = await login(store, absolute_ttl=100)
    await rotate(store, token, now=NOW + 95)
    assert (await rotate(store, token, now=NOW + 100))[0].outcome is INVALID


# -- revocation ---------------------------------------------------------------------------


async def test_revoke_token_revokes_the_family(store: RefreshStore) -> None:
    sid, token = await login(store)
    assert await store.revoke_token(token_hash=token, now=NOW + 1) == sid
    assert (await rotate(store, token, now=NOW + 2))[0].outcome is INVALID


async def test_revoke_token_is_idempotent(store: RefreshStore) -> None:
    sid, token = await login(store)
    assert await store.revoke_token(token_hash=token, now=NOW + 1) == sid
    assert await store.revoke_token(token_hash=token, now=NOW + 2) == sid
    assert await store.revocations(since=NOW, now=NOW + 3) == [(sid, NOW + 1)]


async def test_revoke_token_by_an_old_rotated_token(store: RefreshStore) -> None:
    sid, first = await login(store)
    _, second = await rotate(store, first, now=NOW + 1)
    _, third = await rotate(store, second, now=NOW + 2)
    assert await store.revoke_token(token_hash=first, now=NOW + 3) == sid
    assert (await rotate(store, third, now=NOW + 4))[0].outcome is INVALID


async def test_revoke_token_by_an_idle_expired_token(store: RefreshStore) -> None:
    sid, token = await login(store, idle_ttl=60)
    assert await store.revoke_token(token_hash=token, now=NOW + 3600) == sid


async def test_revoke_unknown_token_returns_none(store: RefreshStore) -> None:
    assert await store.revoke_token(token_hash=new_hash(), now=NOW) is None


async def test_revoke_subject_revokes_every_live_family_of_that_subject(
    store: RefreshStore,
) -> None:
    sid_a, token_a = await login(store, sub="alice")
    sid_b, token_b = await login(store, sub="alice")
    await login(store, sub="alice", absolute_ttl=10)  # already over at NOW + 20
    _, bobs = await login(store, sub="bob")
    assert sorted(await store.revoke_subject(sub="alice", now=NOW + 20)) == sorted([sid_a, sid_b])
    assert (await rotate(store, token_a, now=NOW + 21))[0].outcome is INVALID
    assert (await rotate(store, token_b, now=NOW + 21))[0].outcome is INVALID
    assert (await rotate(store, bobs, now=NOW + 21))[0].outcome is ROTATED


async def test_revoke_subject_twice_revokes_nothing_more(store: RefreshStore) -> None:
    await login(store, sub="alice")
    await store.revoke_subject(sub="alice", now=NOW + 1)
    assert await store.revoke_subject(sub="alice", now=NOW + 2) == []
    assert await store.revoke_subject(sub="nobody", now=NOW + 2) == []


async def test_revocations_lists_sids_revoked_since(store: RefreshStore) -> None:
    by_logout, token = await login(store, sub="alice")
    by_reuse, reused = await login(store, sub="bob")
    by_subject, _ = await login(store, sub="carol")
    await store.revoke_token(token_hash=token, now=NOW + 1)
    await rotate(store, reused, now=NOW + 2)
    await rotate(store, reused, now=NOW + 2 + GRACE + 1)
    await store.revoke_subject(sub="carol", now=NOW + 20)
    everything = [(by_logout, NOW + 1), (by_reuse, NOW + 2 + GRACE + 1), (by_subject, NOW + 20)]
    assert await store.revocations(since=NOW, now=NOW + 21) == everything
    assert await store.revocations(since=NOW + 2 + GRACE + 1, now=NOW + 21) == everything[1:]
    assert await store.revocations(since=NOW + 21, now=NOW + 21) == []


async def test_revocations_older_than_the_retention_are_not_listed(
    store: RefreshStore,
) -> None:
    sid, token = await login(store, absolute_ttl=30 * DAY)
    await store.revoke_token(token_hash=token, now=NOW + 1)
    later = NOW + 1 + DEFAULT_REVOCATION_RETENTION
    assert await store.revocations(since=NOW, now=later) == [(sid, NOW + 1)]
    assert await store.revocations(since=NOW, now=later + 1) == []


# -- counters -----------------------------------------------------------------------------


async def test_hit_counts_within_the_window(store: RefreshStore) -> None:
    assert await store.hit(key="login:user:alice", window=60, now=NOW) == (1, 60)
    assert await store.hit(key="login:user:alice", window=60, now=NOW + 10) == (2, 50)
    assert await store.hit(key="login:user:alice", window=60, now=NOW + 59) == (3, 1)


async def test_hit_opens_a_new_window_when_the_last_one_ended(store: RefreshStore) -> None:
    await store.hit(key="rl:orders:alice", window=60, now=NOW)
    await store.hit(key="rl:orders:alice", window=60, now=NOW + 30)
    assert await store.hit(key="rl:orders:alice", window=60, now=NOW + 60) == (1, 60)


async def test_peek_reads_without_counting(store: RefreshStore) -> None:
    assert await store.peek(key="login:ip:192.0.2.1", window=60, now=NOW) == (0, 0.0)
    await store.hit(key="login:ip:192.0.2.1", window=60, now=NOW)
    assert await store.peek(key="login:ip:192.0.2.1", window=60, now=NOW + 15) == (1, 45)
    assert await store.peek(key="login:ip:192.0.2.1", window=60, now=NOW + 15) == (1, 45)
    assert await store.peek(key="login:ip:192.0.2.1", window=60, now=NOW + 60) == (0, 0.0)


async def test_reset_forgets_the_counter(store: RefreshStore) -> None:
    await store.hit(key="login:user:alice", window=60, now=NOW)
    await store.reset(key="login:user:alice")
    await store.reset(key="login:user:nobody")
    assert await store.peek(key="login:user:alice", window=60, now=NOW) == (0, 0.0)
    assert await store.hit(key="login:user:alice", window=60, now=NOW + 1) == (1, 60)


async def test_counters_are_independent_per_key(store: RefreshStore) -> None:
    await store.hit(key="login:user:alice", window=60, now=NOW)
    await store.hit(key="login:user:alice", window=60, now=NOW)
    assert await store.hit(key="login:user:bob", window=60, now=NOW) == (1, 60)


async def test_concurrent_hits_are_all_counted(store: RefreshStore) -> None:
    await asyncio.gather(*(store.hit(key="rl:k", window=60, now=NOW) for _ in range(20)))
    assert (await store.peek(key="rl:k", window=60, now=NOW)).hits == 20


# -- lifecycle ----------------------------------------------------------------------------


async def test_ping_answers_when_the_backend_is_up(store: RefreshStore) -> None:
    await store.ping()
