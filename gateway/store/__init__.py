"""Where refresh-token families, revocations and rate-limit counters live.

`open_store(url)` picks the backend from the URL's scheme:

- `sqlite:///./data/gateway.db` (relative to `base_dir`, the config file's folder) or
  `sqlite:////abs/path.db`: the default, for one host (several workers share the file);
- `redis://[:password@]host:port/db` or `rediss://` (TLS), with an optional `?prefix=gw:`;
- `postgresql://user[:password]@host:port/db` or `postgres://`, with an optional `?schema=name`.

Nothing connects here: Redis and PostgreSQL are reached on first use, so the gateway starts while
its store is down and every operation raises `StoreUnavailable` until it is back
(docs/behaviour.md#the-store).
Each backend parses its own URL (`from_url`) and imports its driver only when chosen.
"""

from __future__ import annotations

from pathlib import Path

from gateway.store.base import (
    DEFAULT_REVOCATION_RETENTION,
    CounterWindow,
    RefreshStore,
    Rotation,
    RotationOutcome,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    hash_token,
)

__all__ = [
    "DEFAULT_REVOCATION_RETENTION",
    "KNOWN_SCHEMES",
    "CounterWindow",
    "RefreshStore",
    "Rotation",
    "RotationOutcome",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
    "hash_token",
    "open_store",
]

KNOWN_SCHEMES = frozenset({"sqlite", "redis", "rediss", "postgresql", "postgres"})


def open_store(
    url: str,
    *,
    base_dir: Path,
    revocation_retention: float = DEFAULT_REVOCATION_RETENTION,
) -> RefreshStore:
    """The store `url` names, not yet connected; raises StoreConfigError for a bad URL."""
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from gateway.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(
            url, base_dir=base_dir, revocation_retention=revocation_retention
        )
    if scheme in ("redis", "rediss"):
        from gateway.store.redis import RedisStore

        return RedisStore.from_url(url, revocation_retention=revocation_retention)
    if scheme in ("postgresql", "postgres"):
        from gateway.store.postgres import PostgresStore

        return PostgresStore.from_url(url, revocation_retention=revocation_retention)
    known = ", ".join(sorted(KNOWN_SCHEMES))
    raise StoreConfigError(f"store: unknown scheme {scheme!r} (expected one of {known})")
