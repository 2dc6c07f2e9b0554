"""Per-route rate limits: fixed windows per subject or client address.

Configured by ``routes[].rate_limit`` (docs/configuration.md#routes).

One process keeps its counters in memory; when the store is shared (Redis, PostgreSQL) or
several workers serve, the counters live in the store so that every worker and replica agrees.
A store that cannot be reached lets requests through (and is counted in the metrics): the rate
limit protects the upstream, it must not take it offline with the store.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import Protocol

from gateway.config import RateLimit
from gateway.observability import STORE_ERRORS
from gateway.store import RefreshStore, StoreUnavailable

_MAX_KEYS = 100_000


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: RateLimit) -> int | None:
        """``None`` when allowed, else the seconds to wait (``Retry-After``)."""
        ...


class MemoryRateLimiter:
    """Fixed-window counters in this process, bounded in size.

    The dict is kept in the order windows started (a new window re-inserts its key at the
    end), so expired windows are found at the front and eviction never scans the whole map.
    When it is full of live windows the oldest eighth is dropped: those clients start a new
    window early, which costs a little precision and keeps memory and time bounded.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = _MAX_KEYS
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[str, tuple[float, float, int]] = {}

    def __len__(self) -> int:
        return len(self._windows)

    async def hit(self, key: str, limit: RateLimit) -> int | None:
        now = self._clock()
        windows = self._windows
        entry = windows.get(key)
        if entry is not None and now - entry[0] < entry[1]:
            start, length, count = entry
            if count >= limit.count:
                return max(1, math.ceil(start + length - now))
            windows[key] = (start, length, count + 1)
            return None
        if entry is not None:
            del windows[key]
        elif len(windows) >= self._max_keys:
            self._evict(now)
        windows[key] = (now, limit.window, 1)
        return None

    def _evict(self, now: float) -> None:
        windows = self._windows
        expired = []
        for key, (start, length, _) in windows.items():
            if now - start < length:
                break
            expired.append(key)
        for key in expired:
            del windows[key]
        if len(windows) >= self._max_keys:
            for key in list(itertools.islice(windows, max(1, self._max_keys // 8))):
                del windows[key]


class StoreRateLimiter:
    """Fixed-window counters in the shared store."""

    def __init__(self, store: RefreshStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def hit(self, key: str, limit: RateLimit) -> int | None:
        try:
            count, reset_in = await self._store.hit(
                key=f"rl:{key}", window=limit.window, now=self._clock()
            )
        except StoreUnavailable:
            STORE_ERRORS.labels("rate_limit").inc()
            return None
        if count > limit.count:
            return max(1, math.ceil(reset_in))
        return None
