"""A store whose server is down: the gateway starts, calls raise StoreUnavailable, then recover."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from gateway.store import RefreshStore, StoreUnavailable, hash_token, open_store
from tests.store.conftest import (
    POSTGRES_URL,
    REDIS_URL,
    TcpForwarder,
    free_port,
    require_service,
)

NOW = 1_700_000_000.0
PASSWORD = "s3cret-Pa55"
TOKEN_HASH = hash_token("a-refresh-token")

DOWN_URLS = [
    pytest.param("redis://:{password}@127.0.0.1:{port}/0", "Redis", id="redis"),
    pytest.param(
        "postgresql://gateway:{password}@127.0.0.1:{port}/gateway", "PostgreSQL", id="postgres"
    ),
]

Operation = Callable[[RefreshStore], Awaitable[object]]

OPERATIONS: list[Operation] = [
    lambda store: store.ping(),
    lambda store: store.start_session(
        sid="sid-1",
        sub="alice",
        token_hash=TOKEN_HASH,
        data="{}",
        now=NOW,
        absolute_ttl=60,
        idle_ttl=60,
    ),
    lambda store: store.rotate(
        token_hash=TOKEN_HASH, new_token_hash=hash_token("next"), now=NOW, idle_ttl=60, grace=10
    ),
    lambda store: store.revoke_token(token_hash=TOKEN_HASH, now=NOW),
    lambda store: store.revoke_subject(sub="alice", now=NOW),
    lambda store: store.revocations(since=NOW, now=NOW),
    lambda store: store.hit(key="login:user:alice", window=60, now=NOW),
    lambda store: store.peek(key="login:user:alice", window=60, now=NOW),
    lambda store: store.reset(key="login:user:alice"),
]


@pytest.mark.parametrize(("url", "name"), DOWN_URLS)
async def test_every_operation_raises_store_unavailable_without_secrets(
    url: str, name: str, tmp_path: Path
) -> None:
    store = open_store(url.format(password=PASSWORD, port=free_port()), base_dir=tmp_path)
    async with store:
        for operation in OPERATIONS:
            with pytest.raises(StoreUnavailable) as caught:
                await operation(store)
            message = str(caught.value)
            assert message.startswith(f"{name} store at 127.0.0.1:")
            assert "\n" not in message
            assert PASSWORD not in message
            assert TOKEN_HASH not in message


def through(url: str, port: int) -> str:
    """`url` with its port replaced by `port`."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    netloc[-1] = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc="@".join(netloc)))


@pytest.mark.parametrize(
    ("url", "option", "name"),
    [
        pytest.param(REDIS_URL, "prefix=gwtest:{}:", "Redis", id="redis"),
        pytest.param(POSTGRES_URL, "schema=gwtest_{}", "PostgreSQL", id="postgres"),
    ],
)
async def test_store_recovers_when_its_server_comes_back(
    url: str, option: str, name: str, tmp_path: Path
) -> None:
    require_service(name, url)
    parts = urlsplit(url)
    relay = TcpForwarder((parts.hostname or "127.0.0.1", parts.port or 0))
    unique = uuid.uuid4().hex[:16]
    store = open_store(f"{through(url, relay.port)}?{option.format(unique)}", base_dir=tmp_path)
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()  # the gateway started before its store
        await relay.start()
        assert await store.hit(key="recovery", window=60, now=NOW) == (1, 60)
        await relay.stop()  # the server goes away under open connections
        with pytest.raises(StoreUnavailable):
            await store.hit(key="recovery", window=60, now=NOW + 1)
        await relay.start()
        assert await store.hit(key="recovery", window=60, now=NOW + 2) == (2, 58)
        await store.reset(key="recovery")
    finally:
        await store.close()
        await relay.stop()
        if option.startswith("schema"):
            conn = await asyncpg.connect(url)
            await conn.execute(f'DROP SCHEMA IF EXISTS "gwtest_{unique}" CASCADE')
            await conn.close()


def test_unreachable_service_skips_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Redis is not reachable"):
        require_service("Redis", f"redis://127.0.0.1:{free_port()}/0")


def test_unreachable_service_fails_the_test_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires"):
        require_service("Redis", f"redis://127.0.0.1:{free_port()}/0")
