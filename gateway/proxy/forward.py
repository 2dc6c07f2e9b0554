"""Forwarding one request to its upstream and streaming the answer back, over pure ASGI.

The data path uses the purpose-built client in ``gateway.http.client`` (why: its docstring).
One pool per worker holds the keep-alive connections. Bodies are never held whole: the request
body is an async iterator over ASGI ``receive`` (``gateway.proxy.body``), written upstream as
it comes; the answer is
relayed chunk by chunk as it arrives.

Upstream failures are translated here, at one boundary, into ``UpstreamError`` subclasses that
carry the gateway's answer: unreachable is 502, no answer within the route's timeout is 504.

One rule decides every second attempt (``may_send_again``), whether on a new connection after
a keep-alive race (``forward``) or on the route's next target (``deliver``): never once any of
the client's body was taken or any of the answer relayed, since neither can be replayed; and a
request that may have reached the upstream only when its method is idempotent (RFC 9110
§9.2.2), so a POST is never run twice.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from functools import partial
from typing import ClassVar

from starlette.types import Send

from gateway.auth.token_cache import CachedToken
from gateway.config import Route
from gateway.http.client import Connection, UpstreamBroken
from gateway.http.contract import gone_status
from gateway.http.pool import UpstreamPool
from gateway.http.target import Target, request_head
from gateway.observability import UPSTREAM_FAILURES
from gateway.proxy.authority import AuthorityEnded, AuthorityWatch, Watched
from gateway.proxy.balancer import Balancer

ResponseHeaderFilter = Callable[[Iterable[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]]


class UpstreamError(Exception):
    """The upstream could not produce an answer; ``status`` is what the client gets.

    ``connect`` is true when no connection was made, so the request never reached the
    upstream and may be retried on another target whatever its method.
    """

    # ClassVar: compiled (mypyc), a plain class attribute would become a per-instance default
    # that the subclasses' values never reach.
    status: ClassVar[int] = 502
    code: ClassVar[str] = "bad_gateway"

    def __init__(self, message: str, *, connect: bool) -> None:
        super().__init__(message)
        self.connect = connect


class UpstreamUnreachable(UpstreamError):
    """Connection refused, reset or failed before an answer started."""


class UpstreamTimeout(UpstreamError):
    """No answer within the route's timeout (or the connect timeout)."""

    status: ClassVar[int] = 504
    code: ClassVar[str] = "gateway_timeout"


class GatewayOverloaded(UpstreamError):
    """This worker is out of file descriptors: the upstream is not to blame, and not rested."""

    status: ClassVar[int] = 503
    code: ClassVar[str] = "overloaded"


class BodyTooLarge(Exception):
    """The request body grew past the route's ``max_body`` while streaming."""


class ClientGone(Exception):
    """The client disconnected: before its request body was complete, or during the answer.

    ``status`` is what the access log records: 499, or what the server answered when it cut
    the request off itself (408 for a stalled body, 400 for one it could not parse)."""

    def __init__(self, status: int = 499) -> None:
        super().__init__()
        self.status = status


class Exchange:
    """What one forwarded exchange measured, for the access log and metrics.

    A plain class: compiled (mypyc), a dataclass keeps its generated ``__init__`` in Python
    (3,100 instructions per request)."""

    __slots__ = (
        "attempted",
        "body_started",
        "bytes_in",
        "bytes_out",
        "response_started",
        "token",
        "upstream_seconds",
        "upstream_status",
        "watch",
    )

    def __init__(self) -> None:
        self.upstream_status: int | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.upstream_seconds = 0.0
        self.attempted = False
        self.body_started = False
        self.response_started = False
        # An event stream in the answer ends when this token's authority does (set with a
        # token).
        self.token: CachedToken | None = None
        self.watch: AuthorityWatch | None = None


IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def may_send_again(method: str, exchange: Exchange, *, delivered: bool) -> bool:
    """Whether a failed attempt may be made again; ``delivered``: it may have reached the
    upstream (anything after the connection was made)."""
    if exchange.body_started or exchange.response_started:
        return False
    return not delivered or method in IDEMPOTENT


async def forward(
    pool: UpstreamPool,
    *,
    method: str,
    target: Target,
    path: bytes,
    headers: list[tuple[bytes, bytes]],
    body: AsyncIterator[bytes] | None,
    length: int | None,
    timeout: float,
    send: Send,
    response_headers: ResponseHeaderFilter,
    exchange: Exchange,
) -> None:
    """Send the request upstream and relay the answer to ``send`` as it streams in.

    ``path`` is the normalised path and query; ``length`` is the body's declared length
    (a body without one goes upstream chunk-encoded). ``timeout`` bounds each wait for the
    answer."""
    started = time.perf_counter()
    exchange.attempted = True
    chunked = body is not None and length is None
    head = request_head(method, target, path, headers, length=length, chunked=chunked)
    conn: Connection | None = None
    upload: asyncio.Future[None] | None = None
    watched: Watched | None = None
    try:
        while True:
            conn, reused = await _connect(pool, target)
            conn.send_head(head, head_only=method == "HEAD")
            if body is not None:
                exchange.body_started = True  # taken from the client from now on
                upload = asyncio.ensure_future(_upload(conn, body, chunked, length))
            try:
                await conn.read_head(timeout)
            except UpstreamBroken as raced:
                if (
                    reused
                    and not raced.answered
                    and may_send_again(method, exchange, delivered=True)
                ):
                    # The upstream closed this idle connection as the request went out (the
                    # keep-alive race): most likely nothing reached it; send it on a new one.
                    conn.close()
                    continue
                raise
            break
        exchange.upstream_status = conn.status
        assert conn.headers is not None
        if conn.event_stream and exchange.watch is not None and exchange.token is not None:
            watched = exchange.watch.follow(exchange.token, partial(_end_stream, conn))
        await send(
            {
                "type": "http.response.start",
                "status": conn.status,
                "headers": response_headers(conn.headers),
            }
        )
        exchange.response_started = True
        while True:
            chunk = await conn.read(timeout)
            if not chunk:
                await send({"type": "http.response.body", "body": b""})
                break
            exchange.bytes_out += len(chunk)
            # A small answer usually arrives whole: end it with its only chunk.
            last = conn.drained
            await send({"type": "http.response.body", "body": chunk, "more_body": not last})
            if last:
                break
        if upload is None or upload.done():
            conn.release()  # kept only if the exchange ended cleanly
            conn = None
    except (BodyTooLarge, ClientGone):
        raise
    except AuthorityEnded:
        # The event stream's token ended: its chunked body ends cleanly, and the browser's
        # EventSource reconnects with a fresh token.
        await send({"type": "http.response.body", "body": b""})
    # One name per clause: compiled (mypyc), a name keeps the type of its first binding in the
    # function, and a TimeoutError bound to an UpstreamBroken's name is a TypeError.
    except TimeoutError as late:
        raise UpstreamTimeout("the upstream did not answer in time", connect=False) from late
    except UpstreamBroken as broken:
        raise UpstreamUnreachable("the upstream connection failed", connect=False) from broken
    except OSError as exc:
        # ASGI 2.4: ``send`` raises an OSError once the client is gone. Stop reading the
        # upstream (its connection is closed below) rather than relay an answer to no one.
        raise ClientGone(gone_status(exc)) from exc
    finally:
        if watched is not None:
            watched.release()
        if upload is not None and not upload.done():
            upload.cancel()
        if conn is not None:
            conn.close()
        exchange.upstream_seconds += time.perf_counter() - started


def _end_stream(conn: Connection, why: str) -> None:
    conn.fail(AuthorityEnded(why))
    conn.close()  # nothing more is read: what is buffered goes out, then the body ends


async def _connect(pool: UpstreamPool, target: Target) -> tuple[Connection, bool]:
    try:
        return await pool.connect(target)
    except TimeoutError as late:
        raise UpstreamTimeout(
            "the upstream did not accept a connection in time", connect=True
        ) from late
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise GatewayOverloaded(
                "the gateway has no connection to spare; retry", connect=False
            ) from exc
        raise UpstreamUnreachable("the upstream could not be reached", connect=True) from exc


async def _upload(
    conn: Connection, body: AsyncIterator[bytes], chunked: bool, length: int | None
) -> None:
    """Stream the client's body upstream while the answer is read; failures go to the reader."""
    try:
        sent = 0
        while True:
            conn.awaiting_client = True
            try:
                chunk = await anext(body, None)
            finally:
                conn.awaiting_client = False
            if chunk is None:
                break
            sent += len(chunk)
            await conn.write(chunk, chunked=chunked)
        if chunked:
            await conn.write(b"0\r\n\r\n", chunked=False)
        elif sent != length:
            # Fewer bytes than the declared length: the upstream still waits for the rest and
            # would read the next request on this connection as it. Never pool it.
            conn.fail(UpstreamBroken("the request body was shorter than declared", answered=True))
    except UpstreamBroken:
        pass  # the reader meets the same failure
    except Exception as exc:  # BodyTooLarge, ClientGone: the reader raises them
        conn.fail(exc)


async def deliver(
    pool: UpstreamPool,
    balancer: Balancer,
    route: Route,
    targets: Mapping[str, Target],
    *,
    method: str,
    path: bytes,
    headers: list[tuple[bytes, bytes]],
    body: AsyncIterator[bytes] | None,
    length: int | None,
    send: Send,
    response_headers: ResponseHeaderFilter,
    exchange: Exchange,
) -> None:
    """Forward to the route's targets in the balancer's order until one answers.

    A target that refuses connections or does not answer in time is rested; the next one is
    tried when ``may_send_again`` allows. Raises the last ``UpstreamError`` when none answered
    (``GatewayOverloaded`` at once: no target is to blame), and ``BodyTooLarge`` or
    ``ClientGone`` as ``forward`` does."""
    order = balancer.order(route)
    for attempt, url in enumerate(order):
        try:
            await forward(
                pool,
                method=method,
                target=targets[url],
                path=path,
                headers=headers,
                body=body,
                length=length,
                timeout=route.timeout,
                send=send,
                response_headers=response_headers,
                exchange=exchange,
            )
        except GatewayOverloaded:
            raise
        except UpstreamError as exc:
            UPSTREAM_FAILURES.labels(route.name, "connect" if exc.connect else "io").inc()
            if exc.connect or isinstance(exc, UpstreamTimeout):
                # Refused, or accepting but not answering in time: rest it either way.
                balancer.failed(url)
            last = attempt + 1 == len(order)
            if last or not may_send_again(method, exchange, delivered=not exc.connect):
                raise
        else:
            balancer.succeeded(url)
            return
