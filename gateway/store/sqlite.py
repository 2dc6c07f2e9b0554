"""The SQLite store: one file shared by every worker process on a host.

Why the stdlib `sqlite3` in a thread: no extra dependency, and every operation is one short
transaction of a few indexed statements. Each store owns a single-thread executor holding its
one connection, so a call is `run_in_executor` of a plain function; a transaction begins and
ends inside that function and never spans an `await`.

Atomicity: workers are separate processes, so the lock that matters is SQLite's own file lock.
Every read-decide-write (`rotate`, `revoke_*`, `hit`) runs in `BEGIN IMMEDIATE`, which takes the
database's write lock *before* reading: of two processes rotating one token, the second blocks
(up to the busy timeout) and then reads the family as the first left it, so it sees its token as
"previous" and answers GRACE, never a second ROTATED. WAL journaling lets readers (the
revocation poll) proceed while a writer holds that lock; `synchronous=NORMAL` is the WAL setting
SQLite recommends (a power cut may lose the last commits, never corrupt the file).

The file is created on first use with mode 0600 (it holds token hashes), parents included.
Expired rows are deleted at most every `PURGE_INTERVAL` seconds, after a write, in their own
short transaction; `ON DELETE CASCADE` takes a family's tokens with it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

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
from gateway.store.session_links import SQLITE_LINKS, SQLiteLinks

__all__ = ["SQLiteStore"]

T = TypeVar("T")

MEMORY = ":memory:"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS gw_families (
        sid TEXT PRIMARY KEY,
        sub TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        current_hash TEXT NOT NULL,
        previous_hash TEXT,
        rotated_at REAL,
        revoked_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS gw_families_sub ON gw_families (sub)",
    "CREATE INDEX IF NOT EXISTS gw_families_expires_at ON gw_families (expires_at)",
    """CREATE TABLE IF NOT EXISTS gw_tokens (
        hash TEXT PRIMARY KEY,
        sid TEXT NOT NULL REFERENCES gw_families (sid) ON DELETE CASCADE,
        idle_expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS gw_tokens_sid ON gw_tokens (sid)",
    """CREATE TABLE IF NOT EXISTS gw_revocations (
        sid TEXT PRIMARY KEY,
        revoked_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS gw_revocations_at ON gw_revocations (revoked_at)",
    """CREATE TABLE IF NOT EXISTS gw_counters (
        key TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        window_end REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS gw_counters_end ON gw_counters (window_end)",
    *SQLITE_LINKS,
)

SELECT_FAMILY_BY_TOKEN = """
    SELECT f.sid, f.sub, f.data, f.expires_at, f.current_hash, f.previous_hash,
           f.rotated_at, f.revoked_at, t.idle_expires_at
    FROM gw_tokens AS t JOIN gw_families AS f ON f.sid = t.sid
    WHERE t.hash = ?"""

HIT = """
    INSERT INTO gw_counters (key, count, window_end) VALUES (:key, 1, :now + :window)
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN window_end <= :now THEN 1 ELSE count + 1 END,
        window_end = CASE WHEN window_end <= :now THEN excluded.window_end ELSE window_end END
    RETURNING count, window_end"""


def sqlite_path(url: str, base_dir: Path) -> Path | str:
    """The database file a `sqlite:` URL names, relative paths resolved from `base_dir`."""
    parts, query = split_url(url)
    if parts.netloc or query or not parts.path.startswith("/") or parts.path == "/":
        raise StoreConfigError(
            "store: a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = parts.path[1:]
    if path == MEMORY:
        return MEMORY
    return base_dir / path  # an absolute `path` replaces base_dir


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that holds the database lock from its first read."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SQLiteStore(SQLiteLinks, RefreshStore):
    """Refresh-token store in a SQLite file, safe across processes."""

    def __init__(
        self,
        path: Path | str,
        *,
        revocation_retention: float = DEFAULT_REVOCATION_RETENTION,
        busy_timeout: float = 5.0,
    ) -> None:
        self._path = path
        self._name = "SQLite store" if path == MEMORY else f"SQLite store {Path(path).name}"
        self._retention = revocation_retention
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-sqlite")
        self._conn: sqlite3.Connection | None = None  # touched only by the executor's thread
        self._next_purge = float("-inf")
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        base_dir: Path,
        revocation_retention: float = DEFAULT_REVOCATION_RETENTION,
    ) -> SQLiteStore:
        """The store a `sqlite:` URL names."""
        return cls(sqlite_path(url, base_dir), revocation_retention=revocation_retention)

    # -- the boundary: every call runs here, in the store's thread -------------------------

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError(f"{self._name} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, operation)

    def _call(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return operation(self._connection())
        except (sqlite3.Error, OSError) as exc:
            # Locked past the busy timeout, unreadable, read-only, disk full: OperationalError
            # or OSError. "File is not a database" is a bare DatabaseError. The rest (a
            # duplicate key, a misuse) is not an outage.
            if isinstance(exc, sqlite3.OperationalError | OSError) or (
                type(exc) is sqlite3.DatabaseError
            ):
                raise StoreUnavailable(f"{self._name} unavailable: {describe_cause(exc)}") from exc
            raise StoreError(f"{self._name}: {describe_cause(exc)}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self._path != MEMORY:
            path = Path(self._path)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        conn = sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=True
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            with immediate(conn):
                for statement in SCHEMA:
                    conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _purge_if_due(self, conn: sqlite3.Connection, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        try:
            with immediate(conn):
                conn.execute("DELETE FROM gw_families WHERE expires_at <= ?", (now,))
                conn.execute(
                    "DELETE FROM gw_revocations WHERE revoked_at < ?", (now - self._retention,)
                )
                conn.execute("DELETE FROM gw_counters WHERE window_end <= ?", (now,))
        except sqlite3.OperationalError:
            pass  # busy: the write that brought us here succeeded; purge next interval

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

        def start(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                conn.execute(
                    "INSERT INTO gw_families (sid, sub, data, created_at, expires_at,"
                    " current_hash) VALUES (?, ?, ?, ?, ?, ?)",
                    (sid, sub, data, now, expires_at, token_hash),
                )
                conn.execute(
                    "INSERT INTO gw_tokens (hash, sid, idle_expires_at) VALUES (?, ?, ?)",
                    (token_hash, sid, min(now + idle_ttl, expires_at)),
                )
            self._purge_if_due(conn, now)

        await self._run(start)

    async def rotate(
        self, *, token_hash: str, new_token_hash: str, now: float, idle_ttl: float, grace: float
    ) -> Rotation:
        def rotate(conn: sqlite3.Connection) -> Rotation:
            with immediate(conn):
                row = conn.execute(SELECT_FAMILY_BY_TOKEN, (token_hash,)).fetchone()
                if row is None:
                    return INVALID
                family = FamilyRecord(*row[:8])
                outcome = judge_rotation(
                    family, token_hash=token_hash, idle_expires_at=row[8], now=now, grace=grace
                )
                if outcome is RotationOutcome.ROTATED:
                    conn.execute(
                        "INSERT INTO gw_tokens (hash, sid, idle_expires_at) VALUES (?, ?, ?)",
                        (new_token_hash, family.sid, min(now + idle_ttl, family.expires_at)),
                    )
                    conn.execute(
                        "UPDATE gw_families SET current_hash = ?, previous_hash = ?,"
                        " rotated_at = ? WHERE sid = ?",
                        (new_token_hash, token_hash, now, family.sid),
                    )
                elif outcome is RotationOutcome.REUSED:
                    self._revoke(conn, family.sid, now)
                elif outcome is RotationOutcome.INVALID:
                    return INVALID
                return family.rotation(outcome)

        return await self._run(rotate)

    @staticmethod
    def _revoke(conn: sqlite3.Connection, sid: str, now: float) -> None:
        conn.execute("UPDATE gw_families SET revoked_at = ? WHERE sid = ?", (now, sid))
        conn.execute(
            "INSERT INTO gw_revocations (sid, revoked_at) VALUES (?, ?)"
            " ON CONFLICT (sid) DO NOTHING",
            (sid, now),
        )

    async def revoke_token(self, *, token_hash: str, now: float) -> str | None:
        def revoke(conn: sqlite3.Connection) -> str | None:
            with immediate(conn):
                row = conn.execute(
                    "SELECT f.sid, f.revoked_at FROM gw_tokens AS t"
                    " JOIN gw_families AS f ON f.sid = t.sid"
                    " WHERE t.hash = ? AND f.expires_at > ?",
                    (token_hash, now),
                ).fetchone()
                if row is None:
                    return None
                sid, revoked_at = row
                if revoked_at is None:
                    self._revoke(conn, sid, now)
                return str(sid)

        return await self._run(revoke)

    async def revoke_subject(self, *, sub: str, now: float) -> list[str]:
        def revoke(conn: sqlite3.Connection) -> list[str]:
            with immediate(conn):
                sids = [
                    str(sid)
                    for (sid,) in conn.execute(
                        "UPDATE gw_families SET revoked_at = ?"
                        " WHERE sub = ? AND revoked_at IS NULL AND expires_at > ?"
                        " RETURNING sid",
                        (now, sub, now),
                    ).fetchall()
                ]
                conn.executemany(
                    "INSERT INTO gw_revocations (sid, revoked_at) VALUES (?, ?)"
                    " ON CONFLICT (sid) DO NOTHING",
                    [(sid, now) for sid in sids],
                )
            return sids

        return await self._run(revoke)

    async def revocations(self, *, since: float, now: float) -> list[tuple[str, float]]:
        cutoff = max(since, now - self._retention)

        def revocations(conn: sqlite3.Connection) -> list[tuple[str, float]]:
            rows = conn.execute(
                "SELECT sid, revoked_at FROM gw_revocations WHERE revoked_at >= ?"
                " ORDER BY revoked_at",
                (cutoff,),
            ).fetchall()
            return [(str(sid), float(at)) for sid, at in rows]

        return await self._run(revocations)

    # -- counters ----------------------------------------------------------------------------

    async def hit(self, *, key: str, window: float, now: float) -> CounterWindow:
        def hit(conn: sqlite3.Connection) -> CounterWindow:
            with immediate(conn):
                # fetchall: a RETURNING statement must run to completion before COMMIT
                [(count, window_end)] = conn.execute(
                    HIT, {"key": key, "now": now, "window": window}
                ).fetchall()
            self._purge_if_due(conn, now)
            return CounterWindow(int(count), float(window_end) - now)

        return await self._run(hit)

    async def peek(self, *, key: str, window: float, now: float) -> CounterWindow:
        def peek(conn: sqlite3.Connection) -> CounterWindow:
            row = conn.execute(
                "SELECT count, window_end FROM gw_counters WHERE key = ? AND window_end > ?",
                (key, now),
            ).fetchone()
            return (
                CounterWindow(0, 0.0)
                if row is None
                else CounterWindow(int(row[0]), float(row[1]) - now)
            )

        return await self._run(peek)

    async def reset(self, *, key: str) -> None:
        await self._run(lambda conn: conn.execute("DELETE FROM gw_counters WHERE key = ?", (key,)))

    # -- lifecycle ---------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, close)
        self._executor.shutdown(wait=False)
