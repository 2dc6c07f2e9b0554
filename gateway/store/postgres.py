"""The PostgreSQL store: for several gateway hosts sharing one database.

Atomicity: `rotate` runs in one transaction that reads the presented token's family with
`SELECT ... FOR UPDATE OF f`. A second transaction rotating the same token blocks on that row
lock until the first commits; in READ COMMITTED, PostgreSQL then hands it the row as committed,
so it finds its token "previous" and answers GRACE, never a second ROTATED. Revocations are
conditional `UPDATE`s (`revoked_at IS NULL`) and counters one `INSERT ... ON CONFLICT DO UPDATE`,
each atomic on its own.

Connections come from an asyncpg pool created on first use with no idle minimum, so nothing
connects at start-up and an unreachable server fails each call with `StoreUnavailable` until it
is back. A call that meets a connection-class error is not retried here: the caller answers 503.
Tables are created on first use under a transaction-scoped advisory lock, so two processes
racing to create them cannot collide; `?schema=name` puts them in their own schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlencode, urlunsplit

import asyncpg

from gateway.store.base import (
    DEFAULT_REVOCATION_RETENTION,
    INVALID,
    PURGE_INTERVAL,
    CounterWindow,
    FamilyRecord,
    RefreshStore,
    Rotation,
    RotationOutcome,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    check_session_ttls,
    describe_cause,
    judge_rotation,
    split_url,
)
from gateway.store.session_links import POSTGRES_LINKS, PostgresLinks

__all__ = ["PostgresStore"]

T = TypeVar("T")

SCHEMA_LOCK = 0x6777_5354  # "gwST": serialises table creation across processes

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS gw_families (
        sid text PRIMARY KEY,
        sub text NOT NULL,
        data text NOT NULL,
        created_at double precision NOT NULL,
        expires_at double precision NOT NULL,
        current_hash text NOT NULL,
        previous_hash text,
        rotated_at double precision,
        revoked_at double precision
    )""",
    "CREATE INDEX IF NOT EXISTS gw_families_sub ON gw_families (sub)",
    "CREATE INDEX IF NOT EXISTS gw_families_expires_at ON gw_families (expires_at)",
    """CREATE TABLE IF NOT EXISTS gw_tokens (
        hash text PRIMARY KEY,
        sid text NOT NULL REFERENCES gw_families (sid) ON DELETE CASCADE,
        idle_expires_at double precision NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS gw_tokens_sid ON gw_tokens (sid)",
    """CREATE TABLE IF NOT EXISTS gw_revocations (
        sid text PRIMARY KEY,
        revoked_at double precision NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS gw_revocations_at ON gw_revocations (revoked_at)",
    """CREATE TABLE IF NOT EXISTS gw_counters (
        key text PRIMARY KEY,
        count integer NOT NULL,
        window_end double precision NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS gw_counters_end ON gw_counters (window_end)",
    *POSTGRES_LINKS,
)

SELECT_FAMILY_BY_TOKEN_FOR_UPDATE = """
    SELECT f.sid, f.sub, f.data, f.expires_at, f.current_hash, f.previous_hash,
           f.rotated_at, f.revoked_at, t.idle_expires_at
    FROM gw_tokens AS t JOIN gw_families AS f ON f.sid = t.sid
    WHERE t.hash = $1
    FOR UPDATE OF f"""

REVOKE = """
    WITH revoked AS (
        UPDATE gw_families SET revoked_at = $2
        WHERE sid = ANY($1::text[]) AND revoked_at IS NULL
        RETURNING sid
    )
    INSERT INTO gw_revocations (sid, revoked_at) SELECT sid, $2 FROM revoked
    ON CONFLICT (sid) DO NOTHING"""

HIT = """
    INSERT INTO gw_counters AS c (key, count, window_end) VALUES ($1, 1, $2::float8 + $3::float8)
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN c.window_end <= $2 THEN 1 ELSE c.count + 1 END,
        window_end = CASE WHEN c.window_end <= $2 THEN excluded.window_end ELSE c.window_end END
    RETURNING count, window_end"""

# SQLSTATE classes meaning "the server cannot serve us now": connection exception, insufficient
# resources, operator intervention (shutdown, starting up), invalid authorization, unknown database.
UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "28", "3D"})


def is_unavailable(exc: BaseException) -> bool:
    """Whether a driver exception means the server cannot be reached or cannot serve us."""
    if isinstance(exc, ValueError):
        return False  # a value or option the driver refused (its DataError, configuration)
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True  # refused, timed out, "connection is closed"
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and sqlstate[:2] in UNAVAILABLE_CLASSES


class PostgresStore(PostgresLinks, RefreshStore):
    """Refresh-token store in PostgreSQL; connects on first use."""

    def __init__(
        self,
        dsn: str,
        *,
        where: str,
        schema: str | None = None,
        revocation_retention: float = DEFAULT_REVOCATION_RETENTION,
        secrets: tuple[str, ...] = (),
        connect_timeout: float = 3.0,
        command_timeout: float = 5.0,
        max_connections: int = 10,
    ) -> None:
        self._dsn = dsn
        self._where = where
        self._name = f"PostgreSQL store at {where}"
        self._schema = schema
        self._retention = revocation_retention
        self._secrets = secrets
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._max_connections = max_connections
        self._pool: Any = None  # asyncpg.Pool, created on first use
        self._pool_lock = asyncio.Lock()
        self._tables_ready = False
        self._next_purge = float("-inf")

    @classmethod
    def from_url(
        cls, url: str, *, revocation_retention: float = DEFAULT_REVOCATION_RETENTION
    ) -> PostgresStore:
        """The store a `postgresql:` or `postgres:` URL names; `?schema=` picks the schema."""
        parts, query = split_url(url)
        schema = query.pop("schema", None)
        if schema is not None and not (schema.isidentifier() and schema.isascii()):
            raise StoreConfigError("store: schema must be a plain SQL identifier")
        database = parts.path.lstrip("/")
        return cls(
            urlunsplit(parts._replace(query=urlencode(query))),
            where=f"{parts.hostname or 'localhost'}:{parts.port or 5432}/{database}",
            schema=schema,
            revocation_retention=revocation_retention,
            secrets=(parts.password,) if parts.password else (),
        )

    # -- the boundary: every call runs through here ------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection with the tables in place; driver errors translated, once."""
        try:
            pool = await self._get_pool()
            async with pool.acquire(timeout=self._connect_timeout) as conn:
                if not self._tables_ready:
                    await self._create_tables(conn)
                yield conn
        except StoreError:
            raise
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            cause = describe_cause(exc, secrets=self._secrets)
            if is_unavailable(exc):
                raise StoreUnavailable(f"{self._name} unavailable: {cause}") from exc
            raise StoreError(f"{self._name}: {cause}") from exc

    async def _run(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        async with self._connection() as conn:
            return await operation(conn)

    async def _get_pool(self) -> Any:
        async with self._pool_lock:
            if self._pool is None:
                settings = {"search_path": self._schema} if self._schema else None
                pool = asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._max_connections,
                    timeout=self._connect_timeout,
                    command_timeout=self._command_timeout,
                    server_settings=settings,
                )
                await pool  # with min_size=0 this connects nothing
                self._pool = pool
            return self._pool

    async def _create_tables(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            if self._schema:
                # The name was checked to be a plain identifier in from_url.
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            for statement in SCHEMA:
                await conn.execute(statement)
        self._tables_ready = True

    async def _purge_if_due(self, conn: Any, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        try:
            await conn.execute("DELETE FROM gw_families WHERE expires_at <= $1", now)
            await conn.execute(
                "DELETE FROM gw_revocations WHERE revoked_at < $1", now - self._retention
            )
            await conn.execute("DELETE FROM gw_counters WHERE window_end <= $1", now)
        except asyncpg.PostgresError:
            pass  # the write that brought us here succeeded; purge next interval

    # -- sessions ----------------------------------------------------------------------------

    async def start_session(
        self,
        *,
        sid: str,
        sub: str,
        token_hash: str,
        data: str,
        now: float,
        absolute_ttl: float,
        idle_ttl: float,
    ) -> None:
        check_session_ttls(absolute_ttl, idle_ttl)
        expires_at = now + absolute_ttl

        async def start(conn: Any) -> None:
            try:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO gw_families (sid, sub, data, created_at, expires_at,"
                        " current_hash) VALUES ($1, $2, $3, $4, $5, $6)",
                        sid,
                        sub,
                        data,
                        now,
                        expires_at,
                        token_hash,
                    )
                    await conn.execute(
                        "INSERT INTO gw_tokens (hash, sid, idle_expires_at) VALUES ($1, $2, $3)",
                        token_hash,
                        sid,
                        min(now + idle_ttl, expires_at),
                    )
            except asyncpg.UniqueViolationError:
                raise StoreError(f"{self._name}: session id or token hash already exists") from None
            await self._purge_if_due(conn, now)

        await self._run(start)

    async def rotate(
        self, *, token_hash: str, new_token_hash: str, now: float, idle_ttl: float, grace: float
    ) -> Rotation:
        async def rotate(conn: Any) -> Rotation:
            async with conn.transaction():
                row = await conn.fetchrow(SELECT_FAMILY_BY_TOKEN_FOR_UPDATE, token_hash)
                if row is None:
                    return INVALID
                family = FamilyRecord(*row[:8])
                outcome = judge_rotation(
                    family, token_hash=token_hash, idle_expires_at=row[8], now=now, grace=grace
                )
                if outcome is RotationOutcome.ROTATED:
                    await conn.execute(
                        "INSERT INTO gw_tokens (hash, sid, idle_expires_at) VALUES ($1, $2, $3)",
                        new_token_hash,
                        family.sid,
                        min(now + idle_ttl, family.expires_at),
                    )
                    await conn.execute(
                        "UPDATE gw_families SET current_hash = $1, previous_hash = $2,"
                        " rotated_at = $3 WHERE sid = $4",
                        new_token_hash,
                        token_hash,
                        now,
                        family.sid,
                    )
                elif outcome is RotationOutcome.REUSED:
                    await conn.execute(REVOKE, [family.sid], now)
                elif outcome is RotationOutcome.INVALID:
                    return INVALID
                return family.rotation(outcome)

        return await self._run(rotate)

    async def revoke_token(self, *, token_hash: str, now: float) -> str | None:
        async def revoke(conn: Any) -> str | None:
            async with conn.transaction():
                sid = await conn.fetchval(
                    "SELECT f.sid FROM gw_tokens AS t JOIN gw_families AS f ON f.sid = t.sid"
                    " WHERE t.hash = $1 AND f.expires_at > $2",
                    token_hash,
                    now,
                )
                if sid is not None:
                    await conn.execute(REVOKE, [sid], now)
            return None if sid is None else str(sid)

        return await self._run(revoke)

    async def revoke_subject(self, *, sub: str, now: float) -> list[str]:
        async def revoke(conn: Any) -> list[str]:
            rows = await conn.fetch(
                "WITH revoked AS ("
                "  UPDATE gw_families SET revoked_at = $2"
                "  WHERE sub = $1 AND revoked_at IS NULL AND expires_at > $2"
                "  RETURNING sid"
                "), recorded AS ("
                "  INSERT INTO gw_revocations (sid, revoked_at) SELECT sid, $2 FROM revoked"
                "  ON CONFLICT (sid) DO NOTHING"
                ") SELECT sid FROM revoked",
                sub,
                now,
            )
            return [str(row["sid"]) for row in rows]

        return await self._run(revoke)

    async def revocations(self, *, since: float, now: float) -> list[tuple[str, float]]:
        async def revocations(conn: Any) -> list[tuple[str, float]]:
            rows = await conn.fetch(
                "SELECT sid, revoked_at FROM gw_revocations WHERE revoked_at >= $1"
                " ORDER BY revoked_at",
                max(since, now - self._retention),
            )
            return [(str(row["sid"]), float(row["revoked_at"])) for row in rows]

        return await self._run(revocations)

    # -- counters ----------------------------------------------------------------------------

    async def hit(self, *, key: str, window: float, now: float) -> CounterWindow:
        async def hit(conn: Any) -> CounterWindow:
            row = await conn.fetchrow(HIT, key, now, window)
            await self._purge_if_due(conn, now)
            return CounterWindow(int(row["count"]), float(row["window_end"]) - now)

        return await self._run(hit)

    async def peek(self, *, key: str, window: float, now: float) -> CounterWindow:
        async def peek(conn: Any) -> CounterWindow:
            row = await conn.fetchrow(
                "SELECT count, window_end FROM gw_counters WHERE key = $1 AND window_end > $2",
                key,
                now,
            )
            if row is None:
                return CounterWindow(0, 0.0)
            return CounterWindow(int(row["count"]), float(row["window_end"]) - now)

        return await self._run(peek)

    async def reset(self, *, key: str) -> None:
        async def reset(conn: Any) -> None:
            await conn.execute("DELETE FROM gw_counters WHERE key = $1", key)

        await self._run(reset)

    # -- lifecycle ---------------------------------------------------------------------------

    async def ping(self) -> None:
        async def ping(conn: Any) -> None:
            await conn.fetchval("SELECT 1")

        await self._run(ping)

    async def close(self) -> None:
        async with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
