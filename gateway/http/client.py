"""The data path's HTTP/1.1 client: one keep-alive pool per worker, parsed by httptools.

Why not aiohttp here: in this repository's benchmark (bench/, the "floor" rows) a raw ASGI proxy
on aiohttp's ``ClientSession`` spent about 110 µs of CPU per request, most of it inside the
client, and carried 15,000 req/s on 2 workers; the same proxy on this client carried 41,000.
What a reverse proxy needs from a client is small: write a head it has already built, stream a
body, parse an answer, keep the connection. The parsing, the part that must be right, is
httptools (llhttp, the parser Node.js uses), which uvicorn already uses for the client side
of every request. httpx stays where its API serves: JWKS, ``verify_url`` and the tests.

The request path only sees ``UpstreamPool.connect`` (``pool.py``), ``request_head``
(``target.py``), and a ``Connection``'s ``send_head``, ``read_head``, ``read``, ``release``.
Waits end in ``TimeoutError`` after the route's timeout without a byte; a broken connection or
a malformed answer raises ``UpstreamBroken``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from gateway.http.cycle import expire

__all__ = ["MAX_RESPONSE_HEAD", "READ_HIGH_WATER", "Connection", "UpstreamBroken"]

MAX_RESPONSE_HEAD = 64 * 1024
# Reading pauses when this much of an answer waits for the client, so a slow client holds at
# most this much per exchange (plus the socket buffers) however large the answer.
READ_HIGH_WATER = 256 * 1024
READ_LOW_WATER = 64 * 1024
# A closed connection's parser: its own held bound methods of it, a cycle only a full GC frees.
_CLOSED = HttpResponseParser(object())


class Pool(Protocol):
    """What a connection uses of the pool that made it (``pool.UpstreamPool``)."""

    loop: asyncio.AbstractEventLoop

    def keep(self, conn: Connection) -> None: ...
    def forget(self, conn: Connection) -> None: ...


class UpstreamBroken(Exception):
    """The connection failed or the upstream answered something that is not HTTP/1.1.

    ``answered`` is true once any byte of the answer arrived: before that, a request on a
    reused connection met a keep-alive close and can be sent again on a fresh one.
    """

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


class Connection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time."""

    def __init__(self, pool: Pool, key: tuple[str, int, bool]) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._parser = HttpResponseParser(self)
        self._fresh_parser = False
        self._raw: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._reading_paused = False
        self.complete = False
        self.keep_alive = False
        self._head_size = 0  # the status line and header lines of the answer being parsed
        self._arriving = 0
        self._began_here = False
        self._other_coding = False
        self.event_stream = False  # the answer is text/event-stream
        self._sent = 0
        # Set by the uploader while it waits for the client's next body part: a pause that is
        # the client's is not the upstream's timeout (the server's body timeout bounds it).
        self.awaiting_client = False
        self._answered = False
        self._head_only = False
        self._active = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._writing_paused = False
        self.failure: BaseException | None = None
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pool.forget(self)
        self._parser = _CLOSED
        if (
            exc is None
            and self._active
            and self.headers is not None
            and not self.complete
            and _ends_at_close(self.status, self.headers)
        ):
            # No Content-Length, not chunked: the body is everything up to the close (a reset
            # is not a close: that answer is cut and must not look whole).
            self.complete = True
            self.keep_alive = False
            self._wake()
            self._release_drain()
            return
        if self.failure is None:
            self.failure = UpstreamBroken(
                "the upstream closed the connection", answered=self._answered
            )
        self._wake()
        self._release_drain()

    def _release_drain(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self._active:
            # An idle connection has nothing to say; whatever it sends makes it unusable.
            if self.failure is None:
                self.failure = UpstreamBroken("the upstream sent data unasked", answered=True)
            self.close()
            return
        self._answered = True
        if self.complete:
            # Bytes after a whole answer (a body longer than its length, a second answer):
            # this connection's framing cannot be trusted again.
            self.keep_alive = False
        self._began_here = False
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as exc:
            self._upgraded(data[exc.args[0] :] if exc.args else b"")
        except HttpParserError:
            if not self.complete:
                self._break("the upstream's answer is not valid HTTP/1.1")
            else:
                self.keep_alive = False
        if self.headers is None and self.failure is None:
            # A head still incomplete: bound what it may take (llhttp buffers a partial line).
            # Its complete lines are counted exactly; beyond them, a read that found the head
            # begun and left it incomplete is all head.
            if not self._began_here:
                self._arriving += len(data)
            if self._head_size > MAX_RESPONSE_HEAD or self._arriving > MAX_RESPONSE_HEAD:
                self._break("the upstream's response head is too large")
        if self._fresh_parser:
            self._parser, self._fresh_parser = HttpResponseParser(self), False

    def _upgraded(self, rest: bytes) -> None:  # asked for by ``upgrade.UpgradeConnection`` only
        self._break("the upstream switched protocols unasked")

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            self.keep_alive = False  # a second answer begins: see data_received
            return
        self._began_here = True
        self._head_size = self._arriving = 0
        self._other_coding = self.event_stream = False

    def on_status(self, status: bytes) -> None:
        self._head_size += len(status)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))
        size = len(name)
        self._head_size += size + len(value) + 4
        if size == 17 and name.lower() == b"transfer-encoding":
            # llhttp removes only the chunking: gzip under it would reach the client unlabelled
            # (Transfer-Encoding is hop-by-hop), and a close-delimited coding cannot be re-framed.
            self._other_coding = self._other_coding or value.strip().lower() != b"chunked"
        elif size == 12 and name.lower() == b"content-type":
            self.event_stream = value[:17].lower() == b"text/event-stream"

    def on_headers_complete(self) -> None:
        if self.complete:
            # A second answer to one request: this connection cannot be trusted again.
            self._raw = []
            self.keep_alive = False
            return
        if self._head_size > MAX_RESPONSE_HEAD:
            self._break("the upstream's response head is too large")
            return
        status = self._parser.get_status_code()
        if status == 101:
            # Unasked, and without an Upgrade header (llhttp stops at one that has it).
            self._break("the upstream switched protocols unasked")
            return
        if not 100 <= status <= 599:
            self._break("the upstream's answer is not valid HTTP/1.1")
            return
        if self._other_coding:
            self._break("the upstream's answer uses a transfer coding other than chunked")
            return
        if status < 200:
            # 100 Continue and other interim answers: the final one follows.
            self._raw = []
            return
        self.status = status
        self.headers = self._raw
        self._raw = []
        self.keep_alive = self._parser.should_keep_alive()
        if self._head_only:
            # An answer to HEAD has no body whatever its headers say; llhttp cannot be told,
            # so this parser is replaced before it waits for one.
            self.complete = True
            self._fresh_parser = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers is None or self.complete:
            return  # the end of an interim answer, or of a HEAD answer's imagined body
        self.complete = True
        self._wake()

    # the exchange

    def send_head(self, head: bytes, *, head_only: bool) -> None:
        """Start an exchange by writing the request head (the body, if any, follows)."""
        self._active = True
        self._head_only = head_only
        assert self.transport is not None
        self.transport.write(head)

    async def write(self, data: bytes, *, chunked: bool) -> None:
        """Write part of the request body, waiting while the upstream is not reading."""
        self._raise_failure()
        assert self.transport is not None
        if chunked:
            self.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            self.transport.write(data)
        self._sent += len(data)
        if self._writing_paused:
            drain = self._drain = self._loop.create_future()
            try:
                await drain
            finally:
                self._drain = None
            self._raise_failure()

    async def read_head(self, timeout: float) -> None:
        """Wait until the final status line and headers are in (``status``, ``headers``).

        ``timeout`` bounds each pause: while the request body is still going up, the wait
        restarts after every part written, so a long upload is not an upstream timeout, and
        while the body waits for the client, so a slow client is not one either."""
        while self.headers is None:
            await self._charged_wait(timeout)

    async def read(self, timeout: float) -> bytes:
        """The next part of the answer's body; ``b""`` once it is complete."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._reading_paused and self._buffered < READ_LOW_WATER:
                    self._reading_paused = False
                    assert self.transport is not None
                    self.transport.resume_reading()
                return chunk
            if self.complete:
                return b""
            await self._charged_wait(timeout)

    @property
    def buffered(self) -> int:
        """Bytes of the answer received and not read yet."""
        return self._buffered

    @property
    def drained(self) -> bool:
        """Whether the whole answer was read and nothing is left buffered."""
        return self.complete and not self._chunks

    def fail(self, exc: BaseException) -> None:
        """Record a failure from the request side (the body upload) and wake the reader."""
        if self.failure is None:
            self.failure = exc
        self._wake()

    def release(self) -> None:
        """The exchange is over: keep the connection for the next one if it can carry it."""
        if (
            self.complete
            and self.keep_alive
            and self.failure is None
            and not self._chunks
            and self.transport is not None
            and not self.transport.is_closing()
        ):
            self._reset()
            self._pool.keep(self)
        else:
            self.close()

    def close(self) -> None:
        """Drop the connection now: what it still had to send is of no use to anyone, and an
        upstream that stopped reading must not keep it (and its descriptor) open."""
        self._active = False
        if self.transport is not None:
            self.transport.abort()

    def _reset(self) -> None:
        self._raw = []
        self._active = False
        self.status = 0
        self.headers = None
        self.complete = False
        self._answered = False
        self._head_size = 0
        self._arriving = 0
        self._head_only = False

    async def _charged_wait(self, timeout: float) -> None:
        """Wait for the upstream; ``TimeoutError`` only for a pause that is the upstream's.

        While the request body is still going up, a pause in which body bytes were written or
        the uploader waited for the client is not the upstream's: an upstream that answers
        before reading the whole body (full duplex) must not be cut off for a slow client."""
        while True:
            sent = self._sent
            try:
                await self._wait(timeout)
                return
            except TimeoutError:
                if self._sent == sent and not self.awaiting_client:
                    raise

    async def _wait(self, timeout: float) -> None:
        self._raise_failure()
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(timeout, expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        self._raise_failure()

    def _raise_failure(self) -> None:  # a call: inline, mypy(c) takes it for None past an await
        if self.failure is not None:
            raise self.failure

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _break(self, message: str) -> None:
        self.failure = UpstreamBroken(message, answered=True)
        self._wake()
        self.close()


def _ends_at_close(status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    if status in (204, 304):
        return False
    for name, _ in headers:
        lowered = name.lower()
        if lowered == b"content-length" or lowered == b"transfer-encoding":
            return False
    return True
