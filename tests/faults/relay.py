"""A TCP relay in front of a real server that can cut, stall, reset and swallow its replies.

It runs an asyncio loop on a thread of its own, so tests driving a gateway subprocess with
blocking clients can switch it between modes:

- ``pass``: bytes flow both ways (also what ``heal`` restores);
- ``cut``: every relayed connection is closed (FIN) and the port refuses new ones, as a server
  that crashed;
- ``stall``: connections are accepted and held, nothing flows either way (a hung server or a
  network black hole); on ``heal`` what was held flows on;
- ``reset``: every connection is reset (RST), and so is every new one;
- ``swallow``: requests reach the server, which acts on them, but its replies are dropped (an
  answer lost on its way back); on ``heal`` those connections are reset, as a partition's
  half-dead connections end, and new ones pass.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["pass", "cut", "stall", "reset", "swallow"]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    swallowed: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self, *, reset: bool) -> None:
        for writer in (self.client, self.server):
            if writer is not None:
                if reset:
                    _reset(writer)
                else:
                    writer.close()


class Relay:
    """``127.0.0.1:port`` relayed to ``target``; a context manager that runs it on a thread."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode: Mode = "pass"
        self.port = 0
        self.accepted = 0
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()

    def __enter__(self) -> Relay:
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def url_netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, mode: Mode) -> None:
        """Switch to ``mode`` (``heal()`` for ``pass``); takes effect on open connections too."""
        self._call(self._switch(mode))

    def heal(self) -> None:
        self.set("pass")

    # -- on the relay's loop -------------------------------------------------------------------

    def _call(self, coroutine: object) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        future.result(10)

    async def _listen(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, sock=sock)
        self._flowing.set()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            link.close(reset=True)
        self._links.clear()

    async def _switch(self, mode: Mode) -> None:
        before, self.mode = self.mode, mode
        if mode == "stall":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode == "cut":
            if self._server is not None:
                self._server.close()
                self._server = None
            for link in list(self._links):
                link.close(reset=False)
            self._links.clear()
        elif mode == "reset":
            for link in list(self._links):
                link.close(reset=True)
            self._links.clear()
        elif mode == "pass":
            if before == "swallow":
                for link in [link for link in self._links if link.swallowed]:
                    link.close(reset=True)
                    self._links.discard(link)
            if self._server is None:
                await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "reset":
            _reset(writer)
            return
        link = _Link(writer, swallowed=self.mode == "swallow")
        self._links.add(link)
        try:
            await self._flowing.wait()
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._links.discard(link)
            _reset(writer)
            return
        link.server = up_writer
        if link not in self._links:  # cut or reset while connecting
            link.close(reset=True)
            return
        await asyncio.gather(
            self._pipe(link, reader, up_writer, replies=False),
            self._pipe(link, up_reader, writer, replies=True),
        )
        self._links.discard(link)

    async def _pipe(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        replies: bool,
    ) -> None:
        try:
            while data := await source.read(65536):
                await self._flowing.wait()
                if link.swallowed or (replies and self.mode == "swallow"):
                    if replies:
                        link.swallowed = True  # this connection's stream is broken from here
                        continue
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if not sink.is_closing():
                sink.close()
