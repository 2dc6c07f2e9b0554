"""The HTTP/1.1 protocol the gateway's uvicorn servers run: uvicorn's design, less work per request.

uvicorn takes its connection protocol as a class (``Config(http=...)``); its ``Server`` still owns
the sockets, the lifespan, graceful shutdown and the connection and task registries this class
joins. Parsing is httptools (llhttp), as in uvicorn's own ``HttpToolsProtocol``, which this class
follows message for message: the same scope, the same ``receive``/``send`` semantics, the same
answers to a malformed request (400), to pipelining (one request at a time, in order) and to an
application that fails (500, or the connection closed once the answer has started).

Why not uvicorn's class as it is: measured in bench/ on this machine, the gateway carried about
25% more requests per second at 50 connections on a minimal httptools server than on
uvicorn's protocol, with the same application. The differences that pay:
- a whole small answer leaves in one write: the head is held until the first body part joins
  it, or until the end of the event-loop step when none follows;
- no ``asyncio.Event``, flow-control object or keep-alive timer is created per request: the
  request's receive waits on a future only when it must, and one timer per connection checks
  idleness when it fires;
- a connection that never sends a request is closed after the keep-alive timeout too.

Two bounds uvicorn lacks: a request head still arriving past ``MAX_HEAD_BYTES`` is answered 431
and the connection closed, before httptools buffers it without limit (the front door's tighter
32 KiB check on complete headers still gives the ordinary 431); and an upgrade request (the
gateway proxies no WebSocket) is served as plain HTTP, then the connection closes.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

MAX_HEAD_BYTES = 64 * 1024
# A request body waiting for the application pauses reading past this (uvicorn's figure).
BODY_HIGH_WATER = 64 * 1024
_JOIN_BELOW = 64 * 1024  # past this, a copy costs more than a vectored write

log = logging.getLogger("gateway")

# uvicorn's checks on response headers: token characters in names, no controls but tab in values.
_INVALID_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_INVALID_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


# Response header names repeat (content-type, content-length, ...): each is checked once.
_VALID_NAMES: set[bytes] = set()
_MAX_VALID_NAMES = 4096


def _valid_name(name: bytes) -> bool:
    if not name or _INVALID_NAME.search(name):
        return False
    if len(_VALID_NAMES) < _MAX_VALID_NAMES:
        _VALID_NAMES.add(name)
    return True


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _answer(status: int, code: str, description: str) -> list[Message]:
    body = json.dumps({"error": code, "error_description": description}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}


# The answers this server gives itself, to requests it cannot hand to the application whole.
_REFUSALS = {
    400: ("invalid_request", "The request is malformed"),
    408: ("request_timeout", "The request body did not arrive in time"),
    431: ("request_header_fields_too_large", "The request headers are too large"),
}


def _refusal(status: int, request_id: str) -> bytes:
    """The JSON answer for ``status`` (a key of ``_REFUSALS``), closing the connection."""
    code, description = _REFUSALS[status]
    body = json.dumps({"error": code, "error_description": description}).encode()
    echo = b"x-request-id: " + request_id.encode() + b"\r\n" if request_id else b""
    return (
        STATUS_LINES[status] + b"content-type: application/json\r\n"
        b"content-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + echo
        + b"connection: close\r\n\r\n"
        + body
    )


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DISCONNECT: Message = {"type": "http.disconnect"}
# When this server answered a request itself and cut it off (a stalled body: 408; a body that
# cannot be parsed: 400), ``receive`` says so in the disconnect message under this key, and the
# OSError ``send`` raises carries it as ``status``: the access log records what the client got.
# Other applications see a plain disconnect. The application may name the request's id in the
# scope under REQUEST_ID_KEY, to be echoed on such an answer.
DISCONNECT_STATUS = "gateway.status"
REQUEST_ID_KEY = "gateway.request_id"
_INTERNAL_ERROR = _answer(500, "internal_error", "Internal error")
_STOPPING = _answer(503, "unavailable", "The gateway is stopping; retry")


class _HeadTooLarge(Exception):
    """Raised from the parser's callback to stop it at a head over the bound."""


class _UpgradeWithBody(Exception):
    """Raised from the parser's callback to stop it at an upgrade request that has a body."""


class ClientDisconnected(OSError):
    """``send`` on a connection the client has closed (ASGI 2.4: a subclass of OSError).

    ``status`` is what the access log records: 499, or what this server answered before it
    cut the request off (``DISCONNECT_STATUS``)."""

    def __init__(self, message: str, status: int = 499) -> None:
        super().__init__(message)
        self.status = status


class Exchange:
    """One request and its answer: the ASGI ``receive`` and ``send`` of one application call."""

    __slots__ = (
        "_body",
        "_chunked",
        "_conn",
        "_continue",
        "_cut_status",
        "_head",
        "_head_only",
        "_http10",
        "_last_sent",
        "_remaining",
        "_waiter",
        "complete",
        "disconnected",
        "keep_alive",
        "more_body",
        "scope",
        "started",
    )

    def __init__(
        self, conn: GatewayHttpProtocol, scope: dict[str, Any], *, keep_alive: bool, expect: bool
    ) -> None:
        self._conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self._continue = expect
        self._head_only = scope["method"] == "HEAD"
        self._http10 = scope["http_version"] == "1.0"
        self._body = bytearray()
        self.more_body = True
        self._last_sent = False
        self._waiter: asyncio.Future[None] | None = None
        self._cut_status = 0
        self.started = False
        self.complete = False
        self.disconnected = False
        self._head: bytes | None = None
        self._chunked = False
        self._remaining = 0

    async def run(self, app: App) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            # One line, no traceback: a traceback could quote a header or a token.
            if self.disconnected:
                pass  # nobody to answer; ClientDisconnected is how an application learns it
            elif self.complete:
                # The answer is out whole (the next pipelined one may be going): leave it be.
                log.error("unexpected %s in the application after its answer", type(exc).__name__)
            elif isinstance(exc, asyncio.CancelledError):
                # The end of a graceful stop's wait: expected, and said as JSON like the rest.
                log.info("a request was still running when the server stopped")
                if not self.started:
                    for message in _STOPPING:
                        await self.send(message)
                else:
                    self._flush_head()
                    self._conn.close()
            elif not self.started:
                log.error("unexpected %s in the application (answer 500)", type(exc).__name__)
                for message in _INTERNAL_ERROR:
                    await self.send(message)
            else:
                log.error("unexpected %s in the application (answer cut)", type(exc).__name__)
                self._flush_head()
                self._conn.close()
            if not isinstance(exc, Exception):
                raise
        else:
            if not self.started and not self.disconnected:
                log.error("the application returned without answering (answer 500)")
                for message in _INTERNAL_ERROR:
                    await self.send(message)
            elif not self.complete and not self.disconnected:
                # The body is short: only a closed connection says so.
                self._flush_head()
                self._conn.close()

    # called by the connection

    def feed(self, body: bytes) -> None:
        self._body += body
        self.wake()

    def end_of_body(self) -> None:
        self.more_body = False
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def buffered(self) -> int:
        return len(self._body)

    # ASGI

    async def receive(self) -> Message:
        conn = self._conn
        if self._continue:
            self._continue = False
            if not self.started and not self.disconnected:
                conn.write(_CONTINUE)
        while True:
            if self.disconnected or self.complete:
                if self._cut_status:
                    return {"type": "http.disconnect", DISCONNECT_STATUS: self._cut_status}
                return _DISCONNECT
            if self._body or (not self.more_body and not self._last_sent):
                body = bytes(self._body)
                self._body.clear()
                self._last_sent = not self.more_body
                return {"type": "http.request", "body": body, "more_body": self.more_body}
            conn.resume_reading()
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = conn.loop.create_future()
            # Only while body bytes are due: a wait after the body is a wait for disconnect.
            timer = (
                conn.loop.call_later(conn.body_timeout, _expire, waiter) if self.more_body else None
            )
            try:
                await waiter  # shared by concurrent receive calls: one wake-up wakes all
            except TimeoutError:
                self.cut(408)  # nginx's client_body_timeout
            finally:
                if timer is not None:
                    timer.cancel()
                if self._waiter is waiter:
                    self._waiter = None

    def cut(self, status: int) -> None:
        """Answer ``status`` (a key of ``_REFUSALS``) if no answer has started, and close.

        The application sees a disconnect at once; the answer goes out one event-loop step
        later, after the application's first step has named the request (REQUEST_ID_KEY)."""
        if self.disconnected or self.complete:
            return
        self._cut_status = status
        self.disconnected = True
        self.wake()
        self._conn.loop.call_soon(self._answer_cut)

    def _answer_cut(self) -> None:
        if not self.started or self._head is not None:
            # Nothing of an answer has left (a held head is dropped): the refusal can go.
            self._head = None
            request_id = self.scope.get(REQUEST_ID_KEY)
            self._conn.write(
                _refusal(self._cut_status, request_id if isinstance(request_id, str) else "")
            )
        self._conn.close()

    async def send(self, message: Message) -> None:
        conn = self._conn
        if conn.write_paused and not self.disconnected:
            await conn.drain()
        if self.disconnected:
            # An application streaming a long answer stops here instead of producing it all.
            if self._cut_status:
                raise ClientDisconnected("the server cut the request off", self._cut_status)
            raise ClientDisconnected("the client closed the connection")
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self._start(message)
        elif not self.complete:
            if kind != "http.response.body":
                raise RuntimeError(f"expected http.response.body, got {kind!r}")
            self._write_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"{kind!r} sent after the response completed")

    def _start(self, message: Message) -> None:
        self.started = True
        if self._continue and self.more_body:
            # Answered before asking for the body (401, 413, ...): the client may or may not
            # send it now, so nothing after it on this connection can be framed. Close after.
            self.keep_alive = False
        self._continue = False
        status: int = message["status"]
        if status in (204, 304):
            # No body, whatever Content-Length says (a 304 may carry the resource's length).
            self._head_only = True
        parts = [STATUS_LINES.get(status) or _status_line(status)]
        chunked: bool | None = None
        close = False
        headers = message.get("headers", ())
        if self._conn.default_headers:
            headers = [*self._conn.default_headers, *headers]
        for name, value in headers:
            if _INVALID_VALUE.search(value) or (name not in _VALID_NAMES and not _valid_name(name)):
                raise RuntimeError("invalid response header")
            name = name.lower()
            if name == b"content-length":
                if status == 204:
                    continue  # RFC 9110 §8.6: never on a 204 (a 304's is the resource's)
                if chunked is None:
                    self._remaining = 0 if self._head_only else int(value)
                    chunked = False
            elif name == b"transfer-encoding":
                if status == 204:
                    continue  # RFC 9112 §6.1: never on a 204
                if value.lower() == b"chunked":
                    self._remaining = 0
                    chunked = True
            elif name == b"connection" and b"close" in [
                token.strip().lower() for token in value.split(b",")
            ]:
                self.keep_alive = False
                close = True
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not close:
            parts.append(b"connection: close\r\n")
        if chunked is None and not self._head_only and status not in (204, 304):
            if self._http10:
                # HTTP/1.0 knows no chunked coding: the body ends when the connection does.
                self._remaining = -1
            else:
                chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
        self._chunked = bool(chunked)
        parts.append(b"\r\n")
        self._head = b"".join(parts)
        # Held for the first body part; sent alone if none comes in this event-loop step.
        self._conn.loop.call_soon(self._flush_head)

    def _flush_head(self) -> None:
        head = self._head
        if head is not None and not self.disconnected:
            self._head = None
            self._conn.write(head)

    def _write_body(self, body: bytes, more: bool) -> None:
        conn = self._conn
        head = self._head
        self._head = None
        if self._head_only:
            data = b""
            self._remaining = 0
        elif self._chunked:
            if body:
                if len(body) >= _JOIN_BELOW:
                    if head is not None:
                        conn.write(head)
                        head = None
                    conn.writelines((b"%x\r\n" % len(body), body, b"\r\n"))
                    body = b""
                else:
                    body = b"%x\r\n%s\r\n" % (len(body), body)
            data = body if more else body + b"0\r\n\r\n"
        elif self._remaining == -1:
            data = body  # delimited by the close
        else:
            self._remaining -= len(body)
            if self._remaining < 0:
                raise RuntimeError("response content longer than Content-Length")
            data = body
        if head is not None:
            if len(data) < _JOIN_BELOW:
                conn.write(head + data)
            else:
                conn.writelines((head, data))
        elif data:
            conn.write(data)
        if not more:
            if self._remaining > 0:
                raise RuntimeError("response content shorter than Content-Length")
            self.complete = True
            self.wake()
            conn.response_done(self)


class GatewayHttpProtocol(asyncio.Protocol):
    """One client connection."""

    # nginx's send_timeout: the longest a client may take nothing while an answer waits.
    send_timeout = 60.0
    # nginx's client_body_timeout: the longest a request body may stall between two reads.
    body_timeout = 60.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.app: App = config.loaded_app
        # The application's word on requests refused before it saw them (the access log).
        self._on_refused: Callable[[int, str], str] | None = getattr(self.app, "refused", None)
        self.loop = _loop or asyncio.get_event_loop()
        self.root_path = config.root_path
        self.keep_alive_timeout = float(config.timeout_keep_alive)
        self.server_state = server_state
        self.default_headers: list[tuple[bytes, bytes]] = list(server_state.default_headers)
        self.app_state = app_state
        self.parser = httptools.HttpRequestParser(self)
        # Answer the first of pipelined requests even when more bytes follow a close.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport | None = None
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.current: Exchange | None = None
        self._parsing: Exchange | None = None
        self._pipeline: deque[Exchange] = deque()
        self._read_paused = False
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._idle_since = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closing = False
        # per request head
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect = False
        self._in_head = False
        self._began_here = False
        self._head_bytes = 0  # the request line and header lines of the head being parsed
        self._arriving = 0
        self._refusing = False
        self._pending_refusal = 0  # refused behind requests in progress: answered after them

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self.server = get_local_addr(self.transport)
        self.client = get_remote_addr(self.transport)
        self.scheme = "https" if is_ssl(self.transport) else "http"
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._closing = True
        for exchange in (self.current, *self._pipeline):
            if exchange is not None and not exchange.complete:
                exchange.disconnected = True
                exchange.wake()
        self._pipeline.clear()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def eof_received(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            return
        self._began_here = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol switch is served: the upgrade request was answered as plain HTTP,
            # and whatever follows it is not HTTP/1.1, so the connection ends with the answer.
            self._refusing = True
            self.pause_reading()
            last = self._last_in_line()
            if last is not None:
                last.keep_alive = False
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431)
                return
            if isinstance(exc.__context__, _UpgradeWithBody):
                self._refuse(400)
                return
            broken = self._parsing
            if broken is None:
                self._refuse(400)  # a head: answered after the requests before it, if any
            elif broken is self.current:
                # A body that cannot be parsed: that request cannot be served, nor anything
                # after it on this connection.
                self._parsing = None
                self._refusing = True
                self.pause_reading()
                broken.cut(400)
            elif broken in self._pipeline:
                # A pipelined request whose body is broken: answer those before it, then it.
                self._parsing = None
                self._pipeline.remove(broken)
                self._refuse(400)
            else:
                # The body of a request already answered (without reading it): its answer is
                # out, and nothing after it can be framed.
                self._parsing = None
                self._refuse(0)
            return
        if self._in_head:
            # Still arriving. Its complete lines are counted exactly; beyond them, a read that
            # found the head begun and left it incomplete is all head (the read it began in may
            # carry the end of the previous request's body, so that one is not counted whole).
            if not self._began_here:
                self._arriving += len(data)
            if self._head_bytes > MAX_HEAD_BYTES or self._arriving > MAX_HEAD_BYTES:
                self._refuse(431)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._expect = False
        self._in_head = True
        self._began_here = True
        self._head_bytes = 0
        self._arriving = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            # A chunked body's trailer field: never merged into the headers, which were
            # checked already (RFC 9110 §6.5), and never forwarded.
            return
        self._head_bytes += len(name) + len(value) + 4
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge()  # stops the parser: nothing after this head is read
        parser = self.parser
        if parser.should_upgrade() and any(
            name in (b"content-length", b"transfer-encoding") for name, _ in self._headers
        ):
            # llhttp ends an upgrade request at its head and never delivers the body it
            # declares: forwarding the declared length with no bytes would leave the upstream
            # reading the next request as this body. No upgrade is served, so refuse it.
            raise _UpgradeWithBody()
        http_version = parser.get_http_version()
        url = httptools.parse_url(self._url)
        raw_path: bytes = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": http_version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": self.root_path,
            "path": self.root_path + path,
            "raw_path": self.root_path.encode("ascii") + raw_path,
            "query_string": url.query or b"",
            "headers": self._headers,
            "state": self.app_state.copy(),
        }
        exchange = Exchange(
            self,
            scope,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            expect=self._expect,
        )
        self._parsing = exchange
        if self.current is None:
            self._start(exchange)
        else:
            # Pipelined: answered in order, once the one before it is done.
            self._pipeline.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        if exchange is None or exchange.complete or exchange.disconnected:
            return
        exchange.feed(body)
        if exchange.buffered > BODY_HIGH_WATER:
            self.pause_reading()

    def on_message_complete(self) -> None:
        exchange = self._parsing
        self._parsing = None
        if exchange is not None:
            exchange.end_of_body()

    # the exchanges

    def _start(self, exchange: Exchange) -> None:
        self.current = exchange
        task = self.loop.create_task(exchange.run(self.app))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def response_done(self, exchange: Exchange) -> None:
        self.server_state.total_requests += 1
        if not exchange.keep_alive or self._closing:
            if self._pending_refusal and not self._pipeline:
                self._write_refusal(self._pending_refusal)
            self.close()
            return
        self.current = None
        if self._pipeline:
            self._start(self._pipeline.popleft())
            if not self._pipeline:
                self.resume_reading()
        else:
            self.resume_reading()
            self._idle()

    def shutdown(self) -> None:
        """Graceful shutdown (called by uvicorn's server): idle now, busy after the answer."""
        self._closing = True
        if self.current is None:
            self.close()
        else:
            self.current.keep_alive = False

    # transport helpers

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.writelines(parts)

    async def drain(self) -> None:
        """Wait until the client takes more; one that takes nothing for ``send_timeout`` is
        cut off, so a client that stops reading cannot hold its request (and the upstream
        connection behind it) for as long as it stays connected."""
        if self.write_paused:
            drain = self._drain = self.loop.create_future()
            timer = self.loop.call_later(self.send_timeout, _expire, drain)
            try:
                await drain
            except TimeoutError:
                if self.transport is not None:
                    self.transport.abort()
                raise ClientDisconnected("the client stopped reading") from None
            finally:
                timer.cancel()
                self._drain = None

    def pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused and self.transport is not None and not self._pipeline:
            self._read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self._closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int) -> None:
        """Answer a broken request ``status`` (0: no answer) and close; behind requests in
        progress, just close after them (answers go out in order, and theirs come first)."""
        self._refusing = True
        self.pause_reading()
        last = self._last_in_line()
        if last is None:
            if status:
                self._write_refusal(status)
            self.close()
        else:
            self._pending_refusal = status
            last.keep_alive = False

    def _write_refusal(self, status: int) -> None:
        request_id = ""
        if self._on_refused is not None:
            request_id = self._on_refused(status, self.client[0] if self.client else "")
        self.write(_refusal(status, request_id))

    def _last_in_line(self) -> Exchange | None:
        """The exchange answered last: the newest pipelined one, else the one in progress."""
        return self._pipeline[-1] if self._pipeline else self.current

    def _idle(self) -> None:
        """Note that the connection waits for a request; one timer per connection checks.

        A request head must be complete before the timeout too: a client trickling one in
        holds the connection no longer than an idle one."""
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.keep_alive_timeout, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self.current is not None:
            return  # busy: re-armed when the connection next goes idle
        left = self._idle_since + self.keep_alive_timeout - self.loop.time()
        if left <= 0:
            self.close()
        else:
            self._idle_timer = self.loop.call_later(left, self._check_idle)
