"""The front door: one HTTP request from socket to answer, as pure ASGI.

The order is the security argument: size limits and framing first, then the path is normalised
once (what is matched is what is forwarded), CORS preflights are answered, the route is chosen,
the token checked against that route, the rate limit and body limit enforced, and only then is
the upstream contacted. The gateway's own endpoints (``/auth``, ``/.well-known``) are handed to
the token service after the same framing checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth.errors import InvalidRequest, TokenError
from gateway.auth.extract import extract_token
from gateway.http.contract import REQUEST_ID_SCOPE_KEY, gone_status
from gateway.http.errors import send_error
from gateway.observability import UPSTREAM_FAILURES, AccessLog, AccessRecord
from gateway.proxy.access import NO_TOKEN, Denial, invalid_token
from gateway.proxy.balancer import Balancer
from gateway.proxy.cors import without_cors
from gateway.proxy.forward import (
    IDEMPOTENT,
    BodyTooLarge,
    ClientGone,
    Exchange,
    GatewayOverloaded,
    UpstreamError,
    UpstreamTimeout,
    forward,
    request_body,
)
from gateway.proxy.paths import PathError, normalise_path
from gateway.proxy.ratelimit import RateLimiter
from gateway.proxy.routing import MethodNotAllowed
from gateway.proxy.runtime import Runtime

log = logging.getLogger("gateway")

MAX_HEADER_BYTES = 32 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_LOGGED_PATH = 2048


# A random per-process prefix and a counter: unique across workers and restarts, and no
# system call per request (request ids identify, they do not authenticate).
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> bytes:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}".encode()


def _is_own_path(path: str) -> bool:
    return path == "/auth" or path.startswith(("/auth/", "/.well-known/"))


class FrontDoor:
    """Serves every HTTP request of a worker from the current ``Runtime``."""

    def __init__(
        self,
        runtime: Callable[[], Runtime],
        *,
        token_service: ASGIApp,
        access_log: AccessLog,
        balancer: Balancer,
        limiter: Callable[[], RateLimiter],
    ) -> None:
        self._runtime = runtime
        self._token_service = token_service
        self._log = access_log
        self._balancer = balancer
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        rt = self._runtime()
        client = scope.get("client")
        peer = client[0] if client else ""
        record = AccessRecord(method=scope["method"], path="", client=peer)
        try:
            await self._handle(rt, scope, receive, send, record)
        except OSError as exc:
            # The client left (ASGI 2.4's send raises OSError): no one to tell. Or the server
            # cut the request off and answered it itself (ClientDisconnected.status).
            record.status = gone_status(exc)
        except asyncio.CancelledError:
            # Cut at the end of a graceful stop: what the client saw is the upstream's status if
            # the answer had started, else the server's 503.
            record.status = record.upstream_status or 503
            raise
        except Exception as exc:
            # A bug, not bad input: one line naming where, never the message (it could quote a
            # header or a token), and an answer if none has started.
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "unexpected %s at %s:%d (request %s)",
                type(exc).__name__,
                frame.filename,
                frame.lineno,
                record.request_id,
            )
            with contextlib.suppress(RuntimeError):  # the response had already started
                await self._error(send, record, 500, "Internal error", code="internal_error")
        finally:
            self._log.finish(record, started)

    async def _error(
        self,
        send: Send,
        record: AccessRecord,
        status: int,
        description: str,
        *,
        code: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        close: bool = False,
    ) -> None:
        record.status = status
        echo = [(b"x-request-id", record.request_id.encode())]
        await send_error(
            send, status, description, code=code, headers=[*(headers or ()), *echo], close=close
        )

    async def _handle(
        self, rt: Runtime, scope: Scope, receive: Receive, send: Send, record: AccessRecord
    ) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        size = 0
        hosts = 0
        request_id: bytes | None = None
        content_length: bytes | None = None
        chunked = False
        other_coding = False
        origin: bytes | None = None
        origins: list[bytes] | None = None
        preflight = False
        accept: bytes = b""
        bearer_header = False
        fetch_sites: list[bytes] | None = None
        forwarded_for: list[bytes] | None = None
        for name, value in headers:
            size += len(name) + len(value) + 4
            if name == b"host":
                hosts += 1
            elif name == b"x-request-id":
                request_id = value
            elif name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                chunked = True
                other_coding = other_coding or value.strip().lower() != b"chunked"
            elif name == b"origin":
                if origin is not None:  # more than one: kept whole for the cross-site check
                    origins = [*(origins or (origin,)), value]
                origin = value
            elif name == b"access-control-request-method":
                preflight = True
            elif name == b"x-forwarded-for":
                forwarded_for = [*(forwarded_for or ()), value]
            elif name == b"accept":
                accept = value
            elif name == b"authorization":
                bearer_header = True
            elif name == b"sec-fetch-site":
                fetch_sites = [*fetch_sites, value] if fetch_sites else [value]
        if request_id is None or len(request_id) > 200 or not request_id.isascii():
            request_id = new_request_id()
        record.request_id = request_id.decode("ascii", "replace")
        scope[REQUEST_ID_SCOPE_KEY] = record.request_id  # for an answer the server gives itself
        policy = rt.policy
        if forwarded_for is not None:
            record.client = policy.client_address(record.client, forwarded_for)
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        record.path = raw_path[:_MAX_LOGGED_PATH].decode("latin-1")
        if size > MAX_HEADER_BYTES:
            await self._error(send, record, 431, "The request headers are too large", close=True)
            return
        if other_coding:
            # The parser removed the chunking and would hand on bytes still gzip- (or
            # otherwise) coded as if plain: refuse, as RFC 9112 §6.1 asks.
            await self._error(
                send,
                record,
                501,
                "Only the chunked transfer coding is supported",
                code="not_implemented",
                close=True,
            )
            return
        if hosts != 1:
            await self._error(send, record, 400, "The request must carry exactly one Host header")
            return
        try:
            path = normalise_path(raw_path, allow_params=rt.config.server.allow_path_params)
        except PathError as exc:
            await self._error(send, record, 400, str(exc).capitalize())
            return
        record.path = path[:_MAX_LOGGED_PATH]
        method: str = scope["method"]
        if origins is not None:
            origin = None  # no CORS answer for a request that names several origins
        cors = rt.cors
        if preflight and method == "OPTIONS" and origin is not None:
            record.route = "cors-preflight"
            allowed = cors.allows(origin)
            record.status = 204 if allowed else 403
            if allowed:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [*cors.preflight(origin), (b"x-request-id", request_id)],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
            else:
                await self._error(
                    send,
                    record,
                    403,
                    "This origin is not allowed",
                    code="forbidden",
                    headers=cors.preflight(origin),
                )
            return
        if origin is not None and cors.allows(origin):
            send = _with_headers(send, cors.response(origin))
        if _is_own_path(path):
            record.route = "token-service"
            scope["path"] = path
            scope["raw_path"] = path.encode()
            try:
                await self._token_service(
                    scope, _counting(receive, record), _recording(send, record)
                )
            finally:
                sub = scope.get("state", {}).get("sub")  # set by login and refresh
                record.sub = sub if isinstance(sub, str) else None
            return
        match = rt.table.match(method, path)
        if match is None:
            await self._error(send, record, 404, "No route matches this path")
            return
        if isinstance(match, MethodNotAllowed):
            await self._error(
                send,
                record,
                405,
                "This route does not allow the method",
                headers=[(b"allow", ", ".join(match.allow).encode())],
            )
            return
        route = match.route
        record.route = route.name
        identity: tuple[tuple[bytes, bytes], ...] = ()
        if route.auth != "public":
            try:
                token = extract_token(headers, scope.get("query_string", b""), rt.access_cookie)
            except InvalidRequest as exc:
                await self._error(send, record, 400, exc.description)
                return
            denial: Denial | None = None
            # A browser navigation cannot attach a header: with the access cookie it is sent to
            # sign in instead of shown a 401, when it has no token or only a stale cookie one.
            navigation = rt.access_cookie is not None and method == "GET" and b"text/html" in accept
            if token is None:
                if route.auth == "required":
                    if navigation:
                        record.auth_failure = "missing"
                        await self._to_login(send, record, path, scope.get("query_string", b""))
                        return
                    denial = NO_TOKEN
            elif (
                not bearer_header
                and method not in SAFE_METHODS
                and (
                    refusal := rt.origin_check.refusal(
                        [
                            o.decode("latin-1")
                            for o in origins or ((origin,) if origin is not None else ())
                        ],
                        [site.decode("latin-1") for site in fetch_sites or ()],
                    )
                )
            ):
                # The access cookie rides along with any request the browser makes, including
                # a form post from another site: the same check as the token endpoints.
                denial = Denial(403, "forbidden", refusal, "cross_site")
            else:
                try:
                    admitted = await rt.verifier.admit(token)
                except TokenError as exc:
                    denial = invalid_token(exc)
                else:
                    record.sub = admitted.sub
                    identity = admitted.identity
                    denial = rt.access[route.name].check(admitted)
            if denial is not None:
                record.auth_failure = denial.reason
                if navigation and denial.status == 401 and not bearer_header:
                    await self._to_login(send, record, path, scope.get("query_string", b""))
                    return
                await self._error(
                    send,
                    record,
                    denial.status,
                    denial.description,
                    code=denial.code,
                    headers=denial.headers(),
                )
                return
        if route.rate_limit is not None:
            key = f"{route.name}:{'sub:' + record.sub if record.sub else 'ip:' + record.client}"
            retry_after = await self._limiter().hit(key, route.rate_limit)
            if retry_after is not None:
                await self._error(
                    send,
                    record,
                    429,
                    "Too many requests; retry later",
                    headers=[(b"retry-after", str(retry_after).encode())],
                )
                return
        has_body = chunked
        declared: int | None = None
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                await self._error(send, record, 400, "Invalid Content-Length", close=True)
                return
            if declared > route.max_body:
                await self._error(
                    send, record, 413, "The request body is larger than this route allows"
                )
                return
            has_body = declared > 0
        upstream_headers = policy.upstream_request(
            headers,
            route,
            peer=peer_of(scope),
            scheme=scope.get("scheme", "http"),
            request_id=request_id,
            identity=identity,
        )
        query: bytes = scope.get("query_string", b"")
        target_path = match.upstream_path.encode("ascii")
        if query:
            target_path += b"?" + query
        echo = (b"x-request-id", request_id)
        strip_cors = origin is not None and cors.allows(origin)

        def response_headers(raw: Any) -> list[tuple[bytes, bytes]]:
            out = policy.downstream_response(raw)
            if strip_cors:
                out = without_cors(out)
            out.append(echo)
            return out

        exchange = Exchange()
        body = request_body(receive, route.max_body, exchange) if has_body else None
        try:
            targets = self._balancer.order(route)
            for attempt, target in enumerate(targets):
                try:
                    await forward(
                        rt.pool,
                        method=method,
                        target=rt.targets[target],
                        path=target_path,
                        headers=upstream_headers,
                        body=body,
                        length=declared,
                        timeout=route.timeout,
                        send=send,
                        response_headers=response_headers,
                        exchange=exchange,
                    )
                except GatewayOverloaded as exc:
                    await self._upstream_failed(send, record, exchange, exc)
                except UpstreamError as exc:
                    UPSTREAM_FAILURES.labels(route.name, "connect" if exc.connect else "io").inc()
                    if exc.connect or isinstance(exc, UpstreamTimeout):
                        # Refused, or accepting but not answering in time: rest it either way.
                        self._balancer.failed(target)
                    retry = (
                        not exchange.body_started
                        and not exchange.response_started
                        and (exc.connect or method in IDEMPOTENT)
                    )
                    if retry and attempt + 1 < len(targets):
                        continue
                    await self._upstream_failed(send, record, exchange, exc)
                except BodyTooLarge:
                    if not exchange.response_started:
                        await self._error(
                            send,
                            record,
                            413,
                            "The request body is larger than this route allows",
                            close=True,
                        )
                except ClientGone as exc:
                    record.status = exc.status
                else:
                    self._balancer.succeeded(target)
                    record.status = exchange.upstream_status or 0
                break
        finally:
            # Filled whatever ended the exchange: a client gone, a shutdown's cancellation.
            record.upstream_status = exchange.upstream_status
            record.upstream_ms = exchange.upstream_seconds * 1000 if exchange.attempted else None
            record.bytes_in = exchange.bytes_in
            record.bytes_out = exchange.bytes_out

    async def _to_login(self, send: Send, record: AccessRecord, path: str, query: bytes) -> None:
        """A browser navigation without a token goes to the sign-in page, and back after."""
        target = path + ("?" + query.decode("latin-1") if query else "")
        location = "/auth/login?next=" + quote(target, safe="")
        record.status = 303
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"content-length", b"0"),
                    (b"cache-control", b"no-store"),
                    (b"x-request-id", record.request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _upstream_failed(
        self, send: Send, record: AccessRecord, exchange: Exchange, exc: UpstreamError
    ) -> None:
        if exchange.response_started:
            # Headers are out: the only honest signal left is an aborted connection, which
            # uvicorn gives when the app returns without finishing the body.
            record.status = exchange.upstream_status or 0
            return
        await self._error(send, record, exc.status, str(exc).capitalize(), code=exc.code)


def peer_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*without_cors(list(message.get("headers", ()))), *extra]
        await send(message)

    return wrapped


def _counting(receive: Receive, record: AccessRecord) -> Receive:
    async def wrapped() -> Message:
        message = await receive()
        record.bytes_in += len(message.get("body", b""))
        return message

    return wrapped


def _recording(send: Send, record: AccessRecord) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
            # Echoed on the token service's answers too, as on proxied ones (SPEC §5.4).
            message["headers"] = [
                *message.get("headers", ()),
                (b"x-request-id", record.request_id.encode()),
            ]
        elif message["type"] == "http.response.body":
            record.bytes_out += len(message.get("body", b""))
        await send(message)

    return wrapped
