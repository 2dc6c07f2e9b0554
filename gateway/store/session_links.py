"""Links from a provider's session to the gateway sessions it started, for the SQL backends.

A sign-in through an OpenID provider links the new family (``sid``) to two keys: the provider's
session (``sid`` claim) and the provider's user (``sub`` claim), each prefixed with the provider's
name. A back-channel logout names one of them and revokes every live family linked to it
(``RefreshStore.revoke_linked``). The keys are hashed (``link_key``) so the store holds no
provider identifier in the clear, and rows go when their family goes (``ON DELETE CASCADE``
with the purge of expired families).

The tables are created with ``IF NOT EXISTS`` next to the others, so a database created by an
earlier version gains them on the next start without any other change.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

__all__ = ["POSTGRES_LINKS", "SQLITE_LINKS", "PostgresLinks", "SQLiteLinks", "link_key"]

T = TypeVar("T")

SQLITE_LINKS = (
    """CREATE TABLE IF NOT EXISTS gw_links (
        link TEXT NOT NULL,
        sid TEXT NOT NULL REFERENCES gw_families (sid) ON DELETE CASCADE,
        PRIMARY KEY (link, sid)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS gw_links_sid ON gw_links (sid)",
)

POSTGRES_LINKS = (
    """CREATE TABLE IF NOT EXISTS gw_links (
        link TEXT NOT NULL,
        sid TEXT NOT NULL REFERENCES gw_families (sid) ON DELETE CASCADE,
        PRIMARY KEY (link, sid)
    )""",
    "CREATE INDEX IF NOT EXISTS gw_links_sid ON gw_links (sid)",
)


def link_key(provider: str, kind: str, value: str) -> str:
    """The stored key of a provider's session (``kind`` sid) or user (``kind`` sub)."""
    return hashlib.sha256(f"{provider}\x1f{kind}\x1f{value}".encode()).hexdigest()


class SQLiteLinks:
    """``link_session`` and ``revoke_linked`` for ``SQLiteStore``."""

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def link_session(self, *, sid: str, links: Iterable[str]) -> None:
        rows = [(link, sid) for link in links]

        def link(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO gw_links (link, sid) VALUES (?, ?) ON CONFLICT DO NOTHING", rows
            )

        await self._run(link)

    async def revoke_linked(self, *, link: str, now: float) -> list[str]:
        def revoke(conn: sqlite3.Connection) -> list[str]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                sids = [
                    str(sid)
                    for (sid,) in conn.execute(
                        "UPDATE gw_families SET revoked_at = ?"
                        " WHERE sid IN (SELECT sid FROM gw_links WHERE link = ?)"
                        " AND revoked_at IS NULL AND expires_at > ? RETURNING sid",
                        (now, link, now),
                    ).fetchall()
                ]
                conn.executemany(
                    "INSERT INTO gw_revocations (sid, revoked_at) VALUES (?, ?)"
                    " ON CONFLICT (sid) DO NOTHING",
                    [(sid, now) for sid in sids],
                )
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return sids

        return await self._run(revoke)


class PostgresLinks:
    """``link_session`` and ``revoke_linked`` for ``PostgresStore``."""

    async def _run(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def link_session(self, *, sid: str, links: Iterable[str]) -> None:
        rows = [(link, sid) for link in links]

        async def link(conn: Any) -> None:
            await conn.executemany(
                "INSERT INTO gw_links (link, sid) VALUES ($1, $2) ON CONFLICT DO NOTHING", rows
            )

        await self._run(link)

    async def revoke_linked(self, *, link: str, now: float) -> list[str]:
        async def revoke(conn: Any) -> list[str]:
            rows = await conn.fetch(
                "WITH revoked AS ("
                "  UPDATE gw_families SET revoked_at = $2"
                "  WHERE sid IN (SELECT sid FROM gw_links WHERE link = $1)"
                "  AND revoked_at IS NULL AND expires_at > $2"
                "  RETURNING sid"
                "), recorded AS ("
                "  INSERT INTO gw_revocations (sid, revoked_at) SELECT sid, $2 FROM revoked"
                "  ON CONFLICT (sid) DO NOTHING"
                ") SELECT sid FROM revoked",
                link,
                now,
            )
            return [str(row["sid"]) for row in rows]

        return await self._run(revoke)
