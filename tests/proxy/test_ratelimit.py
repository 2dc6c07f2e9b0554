"""The in-memory rate limiter: fixed windows, bounded in size and in time per request."""

from __future__ import annotations

import time

from gateway.config import RateLimit
from gateway.proxy.ratelimit import MemoryRateLimiter

FIVE_PER_SECOND = RateLimit(count=5, window=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_sixth_hit_in_a_window_waits_for_the_window_to_end() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    assert [await limiter.hit("k", FIVE_PER_SECOND) for _ in range(5)] == [None] * 5
    clock.now += 0.4
    assert await limiter.hit("k", FIVE_PER_SECOND) == 1
    clock.now += 0.6
    assert await limiter.hit("k", FIVE_PER_SECOND) is None


async def test_keys_are_counted_apart() -> None:
    limiter = MemoryRateLimiter(Clock())
    for _ in range(5):
        await limiter.hit("a", FIVE_PER_SECOND)
    assert await limiter.hit("b", FIVE_PER_SECOND) is None


async def test_expired_windows_are_evicted_when_full() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock, max_keys=100)
    for index in range(100):
        await limiter.hit(f"old-{index}", FIVE_PER_SECOND)
    clock.now += 2
    await limiter.hit("new", FIVE_PER_SECOND)
    assert len(limiter) == 1


async def test_many_live_keys_stay_bounded_and_cheap() -> None:
    """Fresh client addresses faster than windows expire cannot grow the map or its cost."""
    limiter = MemoryRateLimiter(Clock(), max_keys=10_000)
    started = time.perf_counter()
    for index in range(60_000):
        await limiter.hit(f"ip:{index}", RateLimit(count=5, window=3600.0))
    assert len(limiter) <= 10_000
    assert time.perf_counter() - started < 5  # O(1) amortised; the old scan took minutes
