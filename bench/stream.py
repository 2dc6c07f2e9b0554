"""Large bodies each way: throughput, and how much the gateway's memory grows while they pass.

The client streams with aiohttp (the download is read and dropped chunk by chunk, the upload is
an async generator of one reused buffer), so neither end holds the body; the gateway worker's
RSS is sampled from /proc every 50 ms during the transfer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from bench.procs import RssSampler

MIB = 1024 * 1024
_CLIENT_CHUNK = 256 * 1024
_BUFFER = b"\x5a" * _CLIENT_CHUNK


@dataclass(frozen=True)
class StreamResult:
    """One transfer: its size and speed, and the sampled process's RSS around it."""

    direction: str
    through: str
    size: int
    bytes: int
    seconds: float
    ok: bool
    detail: str
    rss_baseline_mib: float | None = None
    rss_peak_mib: float | None = None

    @property
    def mib_per_s(self) -> float:
        return self.bytes / MIB / self.seconds if self.seconds > 0 else 0.0

    @property
    def rss_growth_mib(self) -> float | None:
        if self.rss_peak_mib is None or self.rss_baseline_mib is None:
            return None
        return self.rss_peak_mib - self.rss_baseline_mib

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "mib_per_s": round(self.mib_per_s, 1),
            "rss_growth_mib": self.rss_growth_mib,
        }


async def _download(session: aiohttp.ClientSession, url: str, headers: Mapping[str, str]) -> int:
    async with session.get(url, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"download answered {response.status}")
        received = 0
        async for chunk in response.content.iter_any():
            received += len(chunk)
        return received


async def _body(size: int) -> AsyncIterator[bytes]:
    remaining = size
    while remaining > 0:
        chunk = _BUFFER if remaining >= _CLIENT_CHUNK else _BUFFER[:remaining]
        remaining -= len(chunk)
        yield chunk


async def _upload(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str], size: int
) -> int:
    async with session.post(url, headers=headers, data=_body(size)) as response:
        if response.status != 200:
            raise RuntimeError(f"upload answered {response.status}")
        answer = await response.json()
        received: int = answer["received"]
        return received


async def _transfer(direction: str, base: str, headers: Mapping[str, str], size: int) -> int:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        if direction == "download":
            return await _download(session, f"{base}/download?bytes={size}", headers)
        return await _upload(session, f"{base}/upload", headers, size)


def transfer(
    direction: str,
    base: str,
    *,
    through: str,
    size: int,
    headers: Mapping[str, str] | None = None,
    pid: int | None = None,
) -> StreamResult:
    """Move ``size`` bytes (``download`` or ``upload``) via ``base``, sampling ``pid``'s RSS."""
    sampler = RssSampler(pid) if pid is not None else None
    started = time.perf_counter()
    moved = 0
    detail = ""
    try:
        if sampler is not None:
            with sampler:
                moved = asyncio.run(_transfer(direction, base, headers or {}, size))
        else:
            moved = asyncio.run(_transfer(direction, base, headers or {}, size))
    except (aiohttp.ClientError, RuntimeError, TimeoutError, KeyError, ValueError) as error:
        detail = f"{type(error).__name__}: {error}"
    seconds = time.perf_counter() - started
    ok = moved == size
    if not ok and not detail:
        detail = f"moved {moved} of {size} bytes"
    return StreamResult(
        direction=direction,
        through=through,
        size=size,
        bytes=moved,
        seconds=seconds,
        ok=ok,
        detail=detail,
        rss_baseline_mib=sampler.baseline / MIB if sampler else None,
        rss_peak_mib=sampler.peak / MIB if sampler else None,
    )
