"""Per-route rate limits (SPEC §3 ``rate_limit``): fixed windows per subject or client address.

One process keeps its counters in memory; when the store is shared (Redis, PostgreSQL) or
several workers serve, the counters live in the store so that every worker and replica agrees.
A store that cannot be reached lets requests through (and is counted in the metrics): the rate
limit protects the upstream, it must not take it offline with the store.
"""

from __future__ import annotations

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
    """Fixed-window counters in this process, bounded in size."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, limit: RateLimit) -> int | None:
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= limit.window:
            if len(self._windows) >= _MAX_KEYS:
                self._windows = {
                    k: v for k, v in self._windows.items() if now - v[0] < limit.window
                }
            self._windows[key] = (now, 1)
            return None
        start, count = window
        if count >= limit.count:
            return max(1, math.ceil(start + limit.window - now))
        self._windows[key] = (start, count + 1)
        return None


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
