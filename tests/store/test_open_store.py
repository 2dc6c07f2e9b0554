"""`open_store` chooses the backend from the URL, and refuses what it cannot understand."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from gateway.store import (
    KNOWN_SCHEMES,
    StoreConfigError,
    StoreUnavailable,
    hash_token,
    open_store,
)
from gateway.store.postgres import PostgresStore
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SQLiteStore

NOW = 1_700_000_000.0


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


def test_known_schemes_are_the_documented_ones() -> None:
    assert KNOWN_SCHEMES == {"sqlite", "redis", "rediss", "postgresql", "postgres"}


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        pytest.param("sqlite:///./data/gateway.db", SQLiteStore, id="sqlite relative"),
        pytest.param("redis://127.0.0.1:6379/0", RedisStore, id="redis"),
        pytest.param("rediss://:pw@cache.internal:6380/1", RedisStore, id="rediss with password"),
        pytest.param("postgresql://gw@127.0.0.1:5432/gw", PostgresStore, id="postgresql"),
        pytest.param("postgres://gw:pw@db/gw?schema=gateway", PostgresStore, id="postgres alias"),
    ],
)
async def test_open_store_picks_the_backend_without_connecting(
    url: str, backend: type, tmp_path: Path
) -> None:
    store = open_store(url, base_dir=tmp_path)
    try:
        assert isinstance(store, backend)
        assert list(tmp_path.iterdir()) == []  # not even SQLite touches the disk yet
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("mysql://db/gateway", id="unknown scheme"),
        pytest.param("memcached://pw@cache:11211", id="unknown scheme with credentials"),
        pytest.param("./data/gateway.db", id="a bare path"),
        pytest.param("", id="empty"),
    ],
)
def test_unknown_scheme_is_refused_in_one_line(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError) as caught:
        open_store(url, base_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "unknown scheme" in message
    assert "pw" not in message


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("sqlite://host/gateway.db", id="sqlite with a host"),
        pytest.param("sqlite:///gateway.db?mode=ro", id="sqlite with options"),
        pytest.param("sqlite://", id="sqlite without a path"),
        pytest.param("redis://:s3cret@cache:port/0", id="redis with a bad port"),
        pytest.param("postgresql://db/gw?schema=a;drop", id="postgres with a bad schema"),
    ],
)
def test_malformed_url_is_refused_without_secrets(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError) as caught:
        open_store(url, base_dir=tmp_path)
    assert "s3cret" not in str(caught.value)


async def test_sqlite_relative_path_is_resolved_from_base_dir_with_parents(
    tmp_path: Path,
) -> None:
    async with open_store("sqlite:///./data/nested/gateway.db", base_dir=tmp_path) as store:
        await store.ping()
    database = tmp_path / "data" / "nested" / "gateway.db"
    assert database.is_file()
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


async def test_sqlite_absolute_path_ignores_base_dir(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "gateway.db"
    async with open_store(f"sqlite:///{database}", base_dir=tmp_path / "config") as store:
        await store.ping()
    assert database.is_file()
    assert not (tmp_path / "config").exists()


async def test_sqlite_in_memory_works_within_one_store(tmp_path: Path) -> None:
    async with open_store("sqlite:///:memory:", base_dir=tmp_path) as store:
        assert await store.hit(key="k", window=60, now=NOW) == (1, 60)
        assert await store.hit(key="k", window=60, now=NOW) == (2, 60)


async def test_sqlite_path_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    async with open_store("sqlite:///a-file/gateway.db", base_dir=tmp_path) as store:
        with pytest.raises(StoreUnavailable, match=r"SQLite store gateway\.db unavailable"):
            await store.ping()


async def test_sqlite_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "gateway.db").write_bytes(b"certainly not SQLite" * 100)
    async with open_store("sqlite:///gateway.db", base_dir=tmp_path) as store:
        with pytest.raises(StoreUnavailable, match="not a database"):
            await store.ping()
