"""Store fixtures on real servers: SQLite in tmp_path, Redis and PostgreSQL on localhost.

Each test gets its own Redis key prefix and its own PostgreSQL schema, removed afterwards.
An unreachable server skips the test, or fails it when CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis.asyncio

from gateway.store import RefreshStore, open_store

REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis"),
    pytest.param("postgres", id="postgres"),
]


def require_service(name: str, url: str) -> None:
    """Skip the test when the server `url` names is not listening; fail instead if CI=true."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 0)
    try:
        socket.create_connection(address, timeout=1.0).close()
    except OSError as exc:
        reason = f"{name} is not reachable at {address[0]}:{address[1]} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires every store backend", pytrace=False)
        pytest.skip(reason)


def free_port() -> int:
    """A localhost port nothing listens on (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def backend_store(
    backend: str, tmp_path: Path, *, revocation_retention: float = 24 * 3600.0
) -> AsyncIterator[RefreshStore]:
    """An empty store of `backend`, removed with everything it wrote on exit."""
    if backend == "sqlite":
        store = open_store(
            "sqlite:///store.db", base_dir=tmp_path, revocation_retention=revocation_retention
        )
        async with store:
            yield store
    elif backend == "redis":
        require_service("Redis", REDIS_URL)
        prefix = f"gwtest:{uuid.uuid4().hex}:"
        store = open_store(
            f"{REDIS_URL}?prefix={prefix}",
            base_dir=tmp_path,
            revocation_retention=revocation_retention,
        )
        try:
            async with store:
                yield store
        finally:
            client = redis.asyncio.Redis.from_url(REDIS_URL)
            async with client:
                keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
                if keys:
                    await client.delete(*keys)
    elif backend == "postgres":
        require_service("PostgreSQL", POSTGRES_URL)
        schema = f"gwtest_{uuid.uuid4().hex[:16]}"
        store = open_store(
            f"{POSTGRES_URL}?schema={schema}",
            base_dir=tmp_path,
            revocation_retention=revocation_retention,
        )
        try:
            async with store:
                yield store
        finally:
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
    else:
        raise AssertionError(backend)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RefreshStore]:
    async with backend_store(request.param, tmp_path) as store:
        yield store


class TcpForwarder:
    """A localhost TCP relay to a real server that can be cut and restored on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Stop listening and drop every relayed connection, as a crashed server would."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}
