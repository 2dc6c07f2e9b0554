"""One request and its answer on a client connection: the ASGI ``receive`` and ``send``.

The connection (``server.py``) parses requests and hands each to a ``RequestCycle``, which runs
the application once and turns its messages into bytes. What pays here (measured in bench/):
a whole small answer leaves in one write (the head is held until the first body part joins it,
or until the end of the event-loop step when none follows), and no ``asyncio.Event`` or
flow-control object is created per request: ``receive`` waits on a future only when it must.

An application that fails gets uvicorn's answers: 500 before its answer started, the connection
closed after; a graceful stop's cut gives 503. Each is logged in one line without a traceback,
which could quote a header or a token.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Protocol

from gateway.http.contract import (
    DISCONNECT_STATUS_KEY,
    REQUEST_ID_SCOPE_KEY,
    SWITCH_SCOPE_KEY,
    App,
    ClientDisconnected,
    Message,
)
from gateway.http.errors import STATUS_LINES, answer_messages, refusal, status_line

__all__ = ["RequestCycle", "expire"]

_JOIN_BELOW = 64 * 1024  # past this, a copy costs more than a vectored write

log = logging.getLogger("gateway")

# uvicorn's checks on response headers: token characters in names, no controls but tab in values.
_INVALID_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_INVALID_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")

# Response header names repeat (content-type, content-length, ...): each is checked once.
_VALID_NAMES: set[bytes] = set()
_MAX_VALID_NAMES = 4096

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DISCONNECT: Message = {"type": "http.disconnect"}
_INTERNAL_ERROR = answer_messages(500, "internal_error", "Internal error")
_STOPPING = answer_messages(503, "unavailable", "The gateway is stopping; retry")


class Connection(Protocol):
    """What a request cycle uses of its client connection (``server.GatewayHttpProtocol``)."""

    loop: asyncio.AbstractEventLoop
    body_timeout: float
    write_paused: bool
    default_headers: list[tuple[bytes, bytes]]

    def write(self, data: bytes) -> None: ...
    def writelines(self, parts: tuple[bytes, ...]) -> None: ...
    async def drain(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def response_done(self, cycle: RequestCycle) -> None: ...


def _valid_name(name: bytes) -> bool:
    if not name or _INVALID_NAME.search(name):
        return False
    if len(_VALID_NAMES) < _MAX_VALID_NAMES:
        _VALID_NAMES.add(name)
    return True


def expire(waiter: asyncio.Future[None]) -> None:
    """A timer's callback: fail ``waiter`` with ``TimeoutError`` unless it is done."""
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class RequestCycle:
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
        self, conn: Connection, scope: dict[str, Any], *, keep_alive: bool, expect: bool
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
            # The switch is bound to this cycle and its connection: a reference cycle that
            # only a full collection would free, once the application is done with it.
            self.scope.pop(SWITCH_SCOPE_KEY, None)
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
            self.scope.pop(SWITCH_SCOPE_KEY, None)  # as above
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
                    return {"type": "http.disconnect", DISCONNECT_STATUS_KEY: self._cut_status}
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
                conn.loop.call_later(conn.body_timeout, expire, waiter) if self.more_body else None
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
        """Answer ``status`` (400 or 408, ``errors.refusal``) if no answer has started, and close.

        The application sees a disconnect at once; the answer goes out one event-loop step
        later, after the application's first step has named the request (REQUEST_ID_SCOPE_KEY)."""
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
            request_id = self.scope.get(REQUEST_ID_SCOPE_KEY)
            self._conn.write(
                refusal(self._cut_status, request_id if isinstance(request_id, str) else "")
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
        parts = [STATUS_LINES.get(status) or status_line(status)]
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
