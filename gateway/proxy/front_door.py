"""The front door: one HTTP request from its head to its answer, as pure ASGI.

``FrontDoor._handle`` reads as the stages in order (``stages.py`` says why this order): scan
the head, check the framing, answer a preflight, hand the gateway's own paths to the token
service, choose the route, authenticate, check the limits, forward. ``/auth/verify`` answers a
trusted proxy's question about another request with the same stages (``forward_auth.py``). A
stage that ends the request returns an answer, which ``_answer`` sends and records; the access
record is the one piece of state that travels with the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import is_reserved
from gateway.http.contract import REQUEST_ID_SCOPE_KEY, SWITCH_SCOPE_KEY, gone_status
from gateway.observability import AccessLog, AccessRecord
from gateway.proxy.answers import Answer, Refusal
from gateway.proxy.authority import AuthorityWatch
from gateway.proxy.balancer import Balancer
from gateway.proxy.body import request_body
from gateway.proxy.cors import without_cors
from gateway.proxy.forward import (
    BodyTooLarge,
    ClientGone,
    Exchange,
    ResponseHeaderFilter,
    UpstreamError,
    deliver,
)
from gateway.proxy.forward_auth import VERIFY_PATH, verify
from gateway.proxy.ratelimit import RateLimiter
from gateway.proxy.runtime import Runtime
from gateway.proxy.stages import (
    RequestHead,
    answer_preflight,
    authenticate,
    check_body,
    check_framing,
    check_rate_limit,
    choose_route,
    new_request_id,
    scan_head,
)
from gateway.proxy.upgrades import Upgrades

__all__ = ["FrontDoor", "new_request_id", "peer_of"]

log = logging.getLogger("gateway")

_MAX_LOGGED_PATH = 2048
_BODY_TOO_LARGE = Refusal(413, "The request body is larger than this route allows", close=True)


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
        watch: AuthorityWatch,
    ) -> None:
        self._runtime = runtime
        self._watch = watch
        self._upgrades = Upgrades(watch, balancer, limiter)
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
            # cut the request off and answered it itself (gateway.http.contract).
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
                await self._answer(send, record, Refusal(500, "Internal error", "internal_error"))
        finally:
            self._log.finish(record, started)

    async def _handle(
        self, rt: Runtime, scope: Scope, receive: Receive, send: Send, record: AccessRecord
    ) -> None:
        head = scan_head(scope["headers"])
        record.request_id = head.request_id.decode("ascii", "replace")
        scope[REQUEST_ID_SCOPE_KEY] = record.request_id  # for an answer the server gives itself
        if head.forwarded_for is not None:
            record.client = rt.policy.client_address(record.client, head.forwarded_for)
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        record.path = raw_path[:_MAX_LOGGED_PATH].decode("latin-1")

        path = check_framing(head, raw_path, allow_params=rt.config.server.allow_path_params)
        if isinstance(path, Refusal):
            return await self._answer(send, record, path)
        record.path = path[:_MAX_LOGGED_PATH]
        method: str = scope["method"]

        if path == VERIFY_PATH:
            # Before the preflight stage: the verify request carries the original's headers,
            # and a preflight among them is the original's, judged by forward_auth.verify.
            decision = await verify(rt, head, peer_of(scope), record)
            return await self._answer(send, record, decision)

        preflight = answer_preflight(head, method, rt.cors)
        if preflight is not None:
            record.route = "cors-preflight"
            return await self._answer(send, record, preflight)
        if head.origin is not None and rt.cors.allows(head.origin):
            send = _with_headers(send, rt.cors.response(head.origin))

        if is_reserved(path):
            return await self._own_endpoint(scope, receive, send, record, path)

        match = choose_route(rt.table, method, path)
        if isinstance(match, Refusal):
            return await self._answer(send, record, match)
        route = match.route
        record.route = route.name

        query: bytes = scope.get("query_string", b"")
        switch = scope.get(SWITCH_SCOPE_KEY)
        if switch is not None:  # an upgrade: websocket.py's stages, then the relay
            refused = await self._upgrades.serve(
                rt,
                switch,
                match,
                head,
                method=method,
                path=path,
                query=query,
                peer=peer_of(scope),
                scheme=scope.get("scheme", "http"),
                send=send,
                record=record,
            )
            return None if refused is None else await self._answer(send, record, refused)
        identity = await authenticate(rt, route, head, method, path, query, record)
        if not isinstance(identity, tuple):
            return await self._answer(send, record, identity)

        if route.rate_limit is not None:
            limited = await check_rate_limit(route, record, self._limiter())
            if limited is not None:
                return await self._answer(send, record, limited)
        body_plan = check_body(route, head)
        if isinstance(body_plan, Refusal):
            return await self._answer(send, record, body_plan)

        # Forward: the upstream's answer, relayed as it streams (forward.deliver).
        upstream_headers = rt.policy.upstream_request(
            head.headers,
            route,
            peer=peer_of(scope),
            scheme=scope.get("scheme", "http"),
            request_id=head.request_id,
            identity=identity.identity,
        )
        target_path = match.upstream_path.encode("ascii")
        if query:
            target_path += b"?" + query
        present, length = body_plan
        exchange = Exchange()
        exchange.token = identity  # an event stream in the answer lives as long as it
        exchange.watch = self._watch
        body = request_body(receive, route.max_body, exchange) if present else None
        try:
            await deliver(
                rt.pool,
                self._balancer,
                route,
                rt.targets,
                method=method,
                path=target_path,
                headers=upstream_headers,
                body=body,
                length=length,
                send=send,
                response_headers=_answer_headers(rt, head),
                exchange=exchange,
            )
        except UpstreamError as exc:
            if exchange.response_started:
                # Headers are out: the only honest signal left is an aborted connection, which
                # the server gives when the app returns without finishing the body.
                record.status = exchange.upstream_status or 0
            else:
                refusal = Refusal(exc.status, str(exc).capitalize(), exc.code)
                await self._answer(send, record, refusal)
        except BodyTooLarge:
            if not exchange.response_started:
                await self._answer(send, record, _BODY_TOO_LARGE)
        except ClientGone as exc:
            record.status = exc.status
        else:
            record.status = exchange.upstream_status or 0
        finally:
            # Filled whatever ended the exchange: a client gone, a shutdown's cancellation.
            record.upstream_status = exchange.upstream_status
            record.upstream_ms = exchange.upstream_seconds * 1000 if exchange.attempted else None
            record.bytes_in = exchange.bytes_in
            record.bytes_out = exchange.bytes_out

    async def _answer(self, send: Send, record: AccessRecord, answer: Answer) -> None:
        """Send an answer the gateway gives itself, and record it."""
        record.status = answer.status
        if answer.reason is not None:
            record.auth_failure = answer.reason
        await answer.send(send, record.request_id.encode())

    async def _own_endpoint(
        self, scope: Scope, receive: Receive, send: Send, record: AccessRecord, path: str
    ) -> None:
        """``/auth`` and ``/.well-known``: the token service, on the normalised path."""
        record.route = "token-service"
        scope["path"] = path
        scope["raw_path"] = path.encode()
        try:
            await self._token_service(scope, _counting(receive, record), _recording(send, record))
        finally:
            sub = scope.get("state", {}).get("sub")  # set by login and refresh
            record.sub = sub if isinstance(sub, str) else None


def _answer_headers(rt: Runtime, head: RequestHead) -> ResponseHeaderFilter:
    """The upstream answer's headers as the client gets them, with the request id echoed."""
    policy = rt.policy
    echo = (b"x-request-id", head.request_id)
    strip_cors = head.origin is not None and rt.cors.allows(head.origin)

    def response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        out = policy.downstream_response(raw)
        if strip_cors:
            out = without_cors(out)
        out.append(echo)
        return out

    return response_headers


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
            # Echoed on the token service's answers too, as on proxied ones.
            message["headers"] = [
                *message.get("headers", ()),
                (b"x-request-id", record.request_id.encode()),
            ]
        elif message["type"] == "http.response.body":
            record.bytes_out += len(message.get("body", b""))
        await send(message)

    return wrapped
