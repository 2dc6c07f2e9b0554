"""The HTTP/1.1 protocol the gateway's uvicorn servers run: uvicorn's design, less work per request.

uvicorn takes its connection protocol as a class (``Config(http=...)``); its ``Server`` still owns
the sockets, the lifespan, graceful shutdown and the connection and task registries this class
joins. Parsing is httptools (llhttp), as in uvicorn's ``HttpToolsProtocol``, followed message for
message: the same scope, ``receive``/``send`` semantics (``cycle.py``), answers to a malformed
request (400), to pipelining (in order) and to an application that fails (500, or the connection
closed once the answer has started). A closed connection drops its parser and exchange, which
refer back to it: the worker's rare full collections would keep closed connections' memory.

Why not uvicorn's class: measured in bench/, the gateway carried ~25% more requests per second at
50 connections on a minimal httptools server than on uvicorn's protocol, same application (what
pays: ``cycle.py``); one idleness timer per connection, not per request, which also closes a
connection that never sends a whole request in time. The client's address: ``peers.py``.
Two bounds uvicorn lacks: a request head still arriving past ``MAX_HEAD_BYTES`` is answered 431
and the connection closed, before httptools buffers it without limit (the front door's tighter
32 KiB check on complete headers still gives the ordinary 431); and an upgrade request is
handed to the application with a way to switch protocols (``contract.SWITCH_SCOPE_KEY``): the
application either takes the connection over as a tunnel or answers as plain HTTP, and then the
connection closes. At a graceful stop a tunnel is told to end only once the HTTP requests in
flight on the other connections are answered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from functools import partial
from typing import Any, cast
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.protocols.utils import get_local_addr, is_ssl
from uvicorn.server import ServerState

from gateway.http.client_io import ClientIO
from gateway.http.contract import SWITCH_SCOPE_KEY, App, ClientDisconnected, RefusalLog, Tunnel
from gateway.http.cycle import RequestCycle
from gateway.http.errors import refusal
from gateway.http.peers import remote_address
from gateway.http.tunnels import end_after_requests, hand_over

__all__ = ["BODY_HIGH_WATER", "MAX_HEAD_BYTES", "GatewayHttpProtocol"]
MAX_HEAD_BYTES = 64 * 1024
# A request body waiting for the application pauses reading past this (uvicorn's figure).
BODY_HIGH_WATER = 64 * 1024
_CLOSED = httptools.HttpRequestParser(object())  # every closed connection's: reads nothing more


class _HeadTooLarge(Exception):
    """Raised from the parser's callback to stop it at a head over the bound."""


class _UpgradeWithBody(Exception):
    """Raised from the parser's callback at an upgrade request that has a body."""


class GatewayHttpProtocol(ClientIO, asyncio.Protocol):
    """One client connection."""

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
        self._on_refused = self.app.refused if isinstance(self.app, RefusalLog) else None
        self.loop = _loop or asyncio.get_event_loop()
        self.root_path = config.root_path
        self.keep_alive_timeout = float(cast(Any, config).timeout_keep_alive)  # int or float
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
        self.current: RequestCycle | None = None
        self._parsing: RequestCycle | None = None
        self._pipeline: deque[RequestCycle] = deque()
        self._read_paused = False
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._idle_since = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._url = b""  # per request head, from here on
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect = False
        self._in_head = False
        self._began_here = False
        self._head_bytes = 0  # the request line and header lines of the head being parsed
        self._arriving = 0
        self._refusing = False
        self._pending_refusal = 0  # refused behind requests in progress: answered after them
        self._upgrade_rest = b""  # what followed an upgrade request's head
        self._tunnel: Tunnel | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self.server = get_local_addr(self.transport)
        self.client = remote_address(self.transport)
        self.scheme = "https" if is_ssl(self.transport) else "http"
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._closing = True
        if self._tunnel is not None:
            self._tunnel.connection_lost(exc)
            self._tunnel, self.parser, self.current = None, _CLOSED, None  # cycles, as below
            return
        for exchange in (self.current, *self._pipeline):
            if exchange is not None and not exchange.complete:
                exchange.disconnected = True
                exchange.wake()
        self._pipeline.clear()
        self.parser, self.current = _CLOSED, None  # each holds self: cycles (see the docstring)
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
            if self._tunnel is not None:
                self._tunnel.data_received(data)
            return
        self._began_here = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # Whatever follows the head is not HTTP/1.1: kept for a tunnel if the application
            # switches protocols (read no further until then), else the connection ends with
            # the answer.
            self._refusing = True
            self.pause_reading()
            self._upgrade_rest = data[exc.args[0] :] if exc.args else b""
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
        if self._tunnel is not None:
            self._tunnel.pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._tunnel is not None:
            self._tunnel.resume_writing()
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
        upgrade = parser.should_upgrade()
        if upgrade and any(
            name in (b"content-length", b"transfer-encoding") for name, _ in self._headers
        ):
            # llhttp ends an upgrade request at its head and never delivers the body it
            # declares: forwarding the declared length with no bytes would leave the upstream
            # reading the next request as this body. No upgrade is served, so refuse it.
            raise _UpgradeWithBody()
        http_version = parser.get_http_version()
        url: Any = httptools.parse_url(self._url)  # not the stubs' bytes: a missing part is None
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
        exchange = RequestCycle(
            self,
            scope,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            expect=self._expect,
        )
        if upgrade:
            scope[SWITCH_SCOPE_KEY] = partial(self._switch, exchange)
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

    def _start(self, exchange: RequestCycle) -> None:
        self.current = exchange
        task = self.loop.create_task(exchange.run(self.app))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def response_done(self, exchange: RequestCycle) -> None:
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

    def _switch(self, exchange: RequestCycle, head: bytes, tunnel: Tunnel) -> None:
        """Answer ``exchange`` with ``head`` (a 101) and hand the connection to ``tunnel``."""
        transport = self.transport
        if self.current is not exchange or transport is None or transport.is_closing():
            raise ClientDisconnected("the client closed the connection")
        exchange.started = exchange.complete = True  # nothing more for the cycle to write
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._tunnel = tunnel
        rest, self._upgrade_rest = self._upgrade_rest, b""
        hand_over(transport, head, tunnel, rest, paused=self.write_paused)
        self._read_paused = False
        if self._closing:
            end_after_requests(self.server_state, tunnel)

    @property
    def tunnelled(self) -> bool:  # handed to a tunnel (``_switch``)
        return self._tunnel is not None

    def shutdown(self) -> None:
        """Graceful shutdown (called by uvicorn's server): idle now, busy after the answer."""
        self._closing = True
        if self._tunnel is not None:
            end_after_requests(self.server_state, self._tunnel)
            return
        if self.current is None:
            self.close()
        else:
            self.current.keep_alive = False

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
        self.write(refusal(status, request_id))

    def _last_in_line(self) -> RequestCycle | None:
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
