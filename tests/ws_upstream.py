"""A real upstream WebSocket server for tests (the ``websockets`` package), in a thread.

``/echo...`` and ``/ws...`` send every message back (``flood`` is answered with 64 KiB and
one byte, random); ``/ticker...`` sends ``tick N`` every 50 ms; a path with ``missing`` in it, or any other, is answered 404 before the switch. Every handshake that reached it is recorded in ``seen``
(path and headers), and every close it saw in ``closes`` (code, reason).
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.waiting import eventually


@dataclass
class Handshake:
    path: str
    headers: list[tuple[str, str]]

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class WsUpstream:
    seen: list[Handshake] = field(default_factory=list)
    closes: list[tuple[int, str]] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Future[None] | None = None
    _thread: threading.Thread | None = None

    def _process(self, conn: ServerConnection, request: Request) -> Response | None:
        self.seen.append(Handshake(request.path, list(request.headers.raw_items())))
        if "missing" in request.path or not request.path.startswith(("/echo", "/ticker", "/ws")):
            return conn.respond(404, "no such socket\n")
        return None

    async def _handler(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        try:
            if conn.request.path.startswith("/ticker"):
                count = 0
                while True:
                    await conn.send(f"tick {count}")
                    count += 1
                    await asyncio.sleep(0.05)
            else:
                async for message in conn:
                    await conn.send(os.urandom(64 * 1024 + 1) if message == "flood" else message)
        except ConnectionClosed:
            pass
        finally:
            received = conn.protocol.close_rcvd
            if received is not None:
                self.closes.append((received.code, received.reason))

    def start(self, **options: Any) -> WsUpstream:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = self._loop.create_future()
            async with serve(
                self._handler,
                "127.0.0.1",
                0,
                process_request=self._process,
                max_size=None,
                **options,
            ) as server:
                self.port = next(iter(server.sockets)).getsockname()[1]
                ready.set()
                await self._stop

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the WebSocket upstream did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        if self._thread is not None:
            self._thread.join(10)

    def wait_close(self, timeout: float = 5.0) -> tuple[int, str]:
        return eventually(lambda: self.closes[-1] if self.closes else None, timeout=timeout)


__all__ = ["Handshake", "Headers", "WsUpstream"]
