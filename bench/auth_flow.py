"""Login and refresh throughput on SQLite, measured only when the gateway serves those endpoints.

Login is argon2id-bound by design, so a few concurrent clients saturate it. Refresh rotates the
cookie on every call and treats a replayed one as theft, so each client keeps its own session
and always presents the cookie it was last given; cookies are handled by hand because aiohttp's
jar refuses cookies from an IP host.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.fixture import USER, USER_PASSWORD

REFRESH_COOKIE = "gw_refresh"
_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass(frozen=True)
class AuthResult:
    """Throughput and latency of one token endpoint."""

    endpoint: str
    ok: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    detail: str = ""

    @property
    def per_s(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_s": round(self.per_s, 1)}


def _gateway_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def add_user(config: Path, scopes: str) -> str | None:
    """Create the bench user with ``gateway users add``; None on success, else why not."""
    if _gateway_cli("users", "add", "--help").returncode != 0:
        return "`gateway users add` does not exist yet"
    done = _gateway_cli(
        "users",
        "add",
        USER,
        "--password-stdin",
        "--scopes",
        scopes.replace(" ", ","),
        "--config",
        str(config),
        stdin=USER_PASSWORD + "\n",
    )
    if done.returncode != 0:
        return f"`gateway users add` failed: {(done.stderr or done.stdout).strip()[:200]}"
    return None


async def endpoints_available(base: str) -> bool:
    """Whether ``POST /auth/login`` and ``/auth/refresh`` exist (anything but 404/405)."""
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        for path in ("/auth/login", "/auth/refresh"):
            async with session.post(base + path, json={}) as response:
                await response.read()
                if response.status in (404, 405):
                    return False
    return True


def _refresh_cookie(response: aiohttp.ClientResponse) -> str | None:
    for header in response.headers.getall("Set-Cookie", []):
        name, _, rest = header.partition("=")
        if name.strip() == REFRESH_COOKIE:
            value = rest.split(";", 1)[0]
            return value or None
    return None


async def _login(session: aiohttp.ClientSession, base: str) -> tuple[int, str | None]:
    credentials = {"username": USER, "password": USER_PASSWORD}
    async with session.post(base + "/auth/login", json=credentials) as response:
        await response.read()
        return response.status, _refresh_cookie(response)


def _result(
    endpoint: str, latencies: list[float], errors: int, seconds: float, detail: str = ""
) -> AuthResult:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
    return AuthResult(
        endpoint=endpoint,
        ok=len(latencies),
        errors=errors,
        seconds=seconds,
        p50_ms=statistics.median(ordered) * 1000 if ordered else 0.0,
        p99_ms=p99 * 1000,
        detail=detail,
    )


async def login_throughput(base: str, seconds: float, clients: int = 4) -> AuthResult:
    """Successful logins per second with ``clients`` concurrent loops."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def loop(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, _ = await _login(session, base)
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        await asyncio.gather(*(loop(session) for _ in range(clients)))
    return _result("login", latencies, errors, time.perf_counter() - started)


async def refresh_throughput(base: str, seconds: float, clients: int = 16) -> AuthResult:
    """Successful refreshes per second, each client rotating its own session's cookie."""
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        cookies: list[str] = []
        for _ in range(clients):
            status, cookie = await _login(session, base)
            if status != 200 or cookie is None:
                return _result("refresh", [], 1, 0.0, f"login for refresh answered {status}")
            cookies.append(cookie)
        deadline = time.perf_counter() + seconds

        async def loop(cookie: str) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                headers = {"Cookie": f"{REFRESH_COOKIE}={cookie}"}
                async with session.post(base + "/auth/refresh", headers=headers) as response:
                    await response.read()
                    rotated = _refresh_cookie(response)
                if response.status != 200 or rotated is None:
                    errors += 1
                    return  # the session is gone; this client stops
                latencies.append(time.perf_counter() - started)
                cookie = rotated

        started = time.perf_counter()
        await asyncio.gather(*(loop(cookie) for cookie in cookies))
    return _result("refresh", latencies, errors, time.perf_counter() - started)
