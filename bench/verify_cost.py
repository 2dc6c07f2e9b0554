"""The cost of one token check inside a worker, with the gateway's own ``Verifier``.

- uncached: a ``Verifier`` with ``cache_size=0`` verifies the same token again and again
  (parse, policy, signature, claims): what a request with a new token pays;
- cache hit: the default ``Verifier`` after one verification: what every repeat request pays;
- sign: PyJWT signing with a loaded key object, for comparison with the issue's figures;
- bounded: one million distinct tokens pushed into the verifier's ``TokenCache`` (directly, as
  verifying a million signatures would take minutes) while this process's RSS is watched
  (tracemalloc would make the run ten times slower; an unbounded cache would grow by ~1 GiB).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt

from bench.fixture import AUDIENCE, ISSUER, new_private_key, sign_token, write_key
from bench.procs import rss_bytes
from gateway.auth.keys import KeyRing
from gateway.auth.token_cache import CachedToken
from gateway.auth.verifier import IssuerPolicy, Verifier

ALGORITHMS = ("RS256", "ES256", "EdDSA")
MIB = 1024 * 1024
FLAT_MIB = 16.0
_BATCH = 64


@dataclass(frozen=True)
class VerifyCost:
    """Microseconds per call for one algorithm."""

    algorithm: str
    uncached_us: float
    cache_hit_us: float
    cache_get_us: float
    sign_us: float


@dataclass
class CacheBound:
    """Memory of the verified-token cache while distinct tokens keep arriving."""

    inserted: int
    maxsize: int
    put_us: float = 0.0
    checkpoints: list[dict[str, float]] = field(default_factory=list)

    @property
    def largest_len(self) -> int:
        return int(max((c["entries"] for c in self.checkpoints), default=0))

    @property
    def growth_mib(self) -> float:
        """Largest RSS at any checkpoint minus at the first (the cache is full by then)."""
        if not self.checkpoints:
            return 0.0
        first = self.checkpoints[0]["rss_mib"]
        return max(c["rss_mib"] for c in self.checkpoints) - first

    @property
    def bounded(self) -> bool:
        """Never more than ``maxsize`` entries, and RSS flat after the first checkpoint.

        Flat means within ``FLAT_MIB``: an entry costs about 1 KiB, so an unbounded cache would
        grow by hundreds of MiB between the first checkpoint and the last.
        """
        return bool(self.checkpoints) and (
            self.largest_len <= self.maxsize and self.growth_mib <= FLAT_MIB
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "largest_len": self.largest_len,
            "growth_mib": self.growth_mib,
            "bounded": self.bounded,
        }


async def _per_call_us(call: Callable[[], Awaitable[object]], seconds: float) -> float:
    """Microseconds per ``await call()``, run in batches for about ``seconds``."""
    await call()
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(_BATCH):
            await call()
        calls += _BATCH
        now = time.perf_counter()
        if now >= deadline:
            return (now - started) / calls * 1e6


def _sync_per_call_us(call: Callable[[], object], seconds: float) -> float:
    call()
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(_BATCH):
            call()
        calls += _BATCH
        now = time.perf_counter()
        if now >= deadline:
            return (now - started) / calls * 1e6


def _verifiers(folder: Path, algorithm: str) -> tuple[Verifier, Verifier, str, Any]:
    key = new_private_key(algorithm)
    write_key(folder, key)
    ring = KeyRing.load(folder, algorithm)
    policies = {ISSUER: IssuerPolicy.own(ring, issuer=ISSUER, audience=AUDIENCE)}
    uncached = Verifier(policies, leeway=30.0, cache_size=0)
    cached = Verifier(policies, leeway=30.0)
    return uncached, cached, sign_token(key, algorithm), key


async def _measure(algorithm: str, seconds: float) -> VerifyCost:
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as folder:
        uncached, cached, token, key = _verifiers(Path(folder), algorithm)
        await cached.verify(token)  # fills the cache, and proves the token is accepted

        def verify_uncached() -> Awaitable[object]:
            return uncached.verify(token)

        def verify_cached() -> Awaitable[object]:
            return cached.verify(token)

        now = time.time()
        return VerifyCost(
            algorithm=algorithm,
            uncached_us=await _per_call_us(verify_uncached, seconds),
            cache_hit_us=await _per_call_us(verify_cached, seconds),
            cache_get_us=_sync_per_call_us(lambda: cached.cache.get(token, now), seconds / 2),
            sign_us=_sync_per_call_us(
                lambda: jwt.encode({"sub": "x"}, key, algorithm=algorithm), seconds / 2
            ),
        )


def measure_costs(seconds: float) -> list[VerifyCost]:
    """``VerifyCost`` for RS256, ES256 and EdDSA, about ``3 * seconds`` each."""
    return [asyncio.run(_measure(algorithm, seconds)) for algorithm in ALGORITHMS]


def measure_cache_bound(total: int, checkpoints: int = 10) -> CacheBound:
    """Insert ``total`` distinct token-sized entries into a default verifier's cache."""
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as folder:
        _, verifier, _, _ = _verifiers(Path(folder), "EdDSA")
    cache = verifier.cache
    result = CacheBound(inserted=total, maxsize=cache.maxsize)
    # A realistic entry: a ~700-character token string and a small claims mapping.
    prefix = "eyJhbGciOiJFZERTQSIsImtpZCI6ImJlbmNoIiwidHlwIjoiYXQrand0In0." + "x" * 620
    exp = time.time() + 3600
    every = max(1, total // checkpoints)
    started = time.perf_counter()
    for i in range(1, total + 1):
        claims = {"sub": f"user-{i}", "jti": str(i), "scope": "orders:read", "exp": exp}
        cache.put(f"{prefix}{i}", CachedToken(exp, None, MappingProxyType(claims)))
        if i % every == 0:
            rss = rss_bytes(os.getpid()) or 0
            result.checkpoints.append({"inserted": i, "entries": len(cache), "rss_mib": rss / MIB})
    result.put_us = (time.perf_counter() - started) / total * 1e6
    return result
