"""The soak's traffic: a mix of what clients do, at a bounded rate, with the statuses expected.

Each kind of request knows the statuses it may get; anything else (or no answer at all, counted
as status 0) is unexpected and fails the soak. Sessions are used one request at a time, as a
browser tab would, so a refresh always presents the cookie it was last given: a rotation seen
twice would be taken for theft, which is the gateway's job, not the soak's to provoke.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.auth_flow import REFRESH_COOKIE
from bench.fixture import USER, USER_PASSWORD

STREAM_BYTES = 1024 * 1024
UPLOAD_BYTES = 256 * 1024
MAX_SESSIONS = 50
_TIMEOUT = aiohttp.ClientTimeout(total=30)
Action = Callable[[aiohttp.ClientSession], Coroutine[Any, Any, None]]

# A request head no HTTP parser accepts, one a client library could never send.
MALFORMED = (
    b"GET /api/orders HTTP/1.1\r\nHost: soak\r\nBad Header Line\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
    b"GET /api/orders HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
)


@dataclass
class Window:
    """What one reporting interval saw: latencies and statuses, by kind of request."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)

    def record(self, kind: str, status: int, seconds: float, expected: frozenset[int]) -> None:
        self.latencies.append(seconds)
        self.statuses[str(status)] += 1
        if status not in expected:
            self.unexpected[f"{kind} {status}"] += 1

    def percentile(self, fraction: float) -> float:
        """Latency in ms at ``fraction`` (0.5, 0.99) of this window's requests."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


def _cookie(response: aiohttp.ClientResponse) -> str | None:
    for header in response.headers.getall("Set-Cookie", []):
        name, _, rest = header.partition("=")
        if name.strip() == REFRESH_COOKIE:
            return rest.split(";", 1)[0] or None
    return None


class Traffic:
    """Sends the mix to ``base`` at ``rate`` requests/s, at most ``concurrency`` at once."""

    def __init__(self, base: str, port: int, tokens: list[str], rate: float) -> None:
        self.base = base
        self.port = port
        self.tokens = tokens
        self.rate = rate
        self.window = Window()
        self.sessions: list[str] = []  # refresh cookies of idle sessions
        self._login_lock = asyncio.Lock()
        self._upload = b"u" * UPLOAD_BYTES
        self._random = random.Random(7)
        self._kinds: list[tuple[str, int, Action]] = [
            ("proxied", 60, self.proxied),
            ("no token", 5, self.no_token),
            ("bad token", 5, self.bad_token),
            ("download", 4, self.download),
            ("upload", 4, self.upload),
            ("login", 5, self.login),
            ("refresh", 10, self.refresh),
            ("logout", 3, self.logout),
            ("malformed", 4, self.malformed),
        ]

    def take(self) -> Window:
        """The window so far, and start a new one."""
        window, self.window = self.window, Window()
        return window

    async def _timed(self, kind: str, expected: frozenset[int], call: Awaitable[int]) -> None:
        started = time.perf_counter()
        try:
            status = await call
        except (TimeoutError, aiohttp.ClientError, OSError):
            status = 0
        self.window.record(kind, status, time.perf_counter() - started, expected)

    async def proxied(self, session: aiohttp.ClientSession) -> None:
        token = self._random.choice(self.tokens)
        await self._timed("proxied", frozenset({200}), self._get(session, "/api/orders", token))

    async def no_token(self, session: aiohttp.ClientSession) -> None:
        await self._timed("no token", frozenset({401}), self._get(session, "/api/orders", None))

    async def bad_token(self, session: aiohttp.ClientSession) -> None:
        token = self._random.choice(self.tokens)[:-4] + "AAAA"
        await self._timed("bad token", frozenset({401}), self._get(session, "/api/orders", token))

    async def _get(self, session: aiohttp.ClientSession, path: str, token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with session.get(self.base + path, headers=headers) as response:
            await response.read()
            return response.status

    async def download(self, session: aiohttp.ClientSession) -> None:
        async def call() -> int:
            headers = {"Authorization": f"Bearer {self._random.choice(self.tokens)}"}
            url = f"{self.base}/stream/download?bytes={STREAM_BYTES}"
            async with session.get(url, headers=headers) as response:
                async for _ in response.content.iter_chunked(65536):
                    pass
                return response.status

        await self._timed("download", frozenset({200}), call())

    async def upload(self, session: aiohttp.ClientSession) -> None:
        async def call() -> int:
            headers = {"Authorization": f"Bearer {self._random.choice(self.tokens)}"}
            async with session.post(
                f"{self.base}/stream/upload", data=self._upload, headers=headers
            ) as response:
                await response.read()
                return response.status

        await self._timed("upload", frozenset({200}), call())

    async def login(self, session: aiohttp.ClientSession) -> None:
        async def call() -> int:
            credentials = {"username": USER, "password": USER_PASSWORD}
            async with session.post(self.base + "/auth/login", json=credentials) as response:
                await response.read()
                cookie = _cookie(response)
                if response.status == 200 and cookie and len(self.sessions) < MAX_SESSIONS:
                    self.sessions.append(cookie)
                return response.status

        # One at a time: attempts are counted before the password is checked, so a burst of
        # logins to one name could pass the failed-login limit (429) while all succeed.
        async with self._login_lock:
            await self._timed("login", frozenset({200}), call())

    async def refresh(self, session: aiohttp.ClientSession) -> None:
        if not self.sessions:
            return await self.login(session)
        cookie = self.sessions.pop(self._random.randrange(len(self.sessions)))

        async def call() -> int:
            headers = {"Cookie": f"{REFRESH_COOKIE}={cookie}"}
            async with session.post(self.base + "/auth/refresh", headers=headers) as response:
                await response.read()
                rotated = _cookie(response)
                if response.status == 200 and rotated:
                    self.sessions.append(rotated)
                return response.status

        await self._timed("refresh", frozenset({200}), call())

    async def logout(self, session: aiohttp.ClientSession) -> None:
        if not self.sessions:
            return await self.login(session)
        cookie = self.sessions.pop(self._random.randrange(len(self.sessions)))

        async def call() -> int:
            headers = {"Cookie": f"{REFRESH_COOKIE}={cookie}"}
            async with session.post(self.base + "/auth/logout", headers=headers) as response:
                await response.read()
                return response.status

        await self._timed("logout", frozenset({204}), call())

    async def malformed(self, session: aiohttp.ClientSession) -> None:
        async def call() -> int:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                writer.write(self._random.choice(MALFORMED))
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), 10)
                return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else 0
            finally:
                writer.close()

        await self._timed("malformed", frozenset({400}), call())

    def _pick(self) -> Action:
        total = sum(weight for _, weight, _ in self._kinds)
        roll = self._random.uniform(0, total)
        for _, weight, action in self._kinds:
            roll -= weight
            if roll <= 0:
                return action
        return self._kinds[0][2]

    async def run_until(self, deadline: float, concurrency: int = 32) -> None:
        """Start one request every 1/rate s until ``deadline`` (monotonic); wait for them all."""
        running: set[asyncio.Task[None]] = set()
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(timeout=_TIMEOUT, connector=connector) as session:
            next_start = time.monotonic()
            while next_start < deadline:
                await asyncio.sleep(max(0.0, next_start - time.monotonic()))
                next_start += 1.0 / self.rate
                if len(running) >= concurrency:
                    continue  # the gateway is behind: the rate bends, the load stays bounded
                task = asyncio.create_task(self._pick()(session))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.wait(running)
