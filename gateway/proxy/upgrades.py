"""Serving one upgrade request: the stages of ``websocket.py``, then the relay for its life.

The front door hands every request that asks to switch protocols here once its route is known.
The request's task stays with the socket until it ends (a suspended coroutine: no CPU while the
socket is idle), then writes the access-log line: status 101, the socket's duration, the bytes
relayed each way and the close code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.http.client import UpstreamBroken
from gateway.http.contract import Send, SwitchProtocols
from gateway.http.upgrade import UpgradeConnection
from gateway.observability import WEBSOCKET_CLOSES, WEBSOCKETS_OPEN, AccessRecord
from gateway.proxy.answers import Answer, Refusal
from gateway.proxy.authority import AuthorityWatch
from gateway.proxy.balancer import Balancer
from gateway.proxy.forward import UpstreamError
from gateway.proxy.ratelimit import RateLimiter
from gateway.proxy.relay import Relay
from gateway.proxy.routing import RouteMatch
from gateway.proxy.runtime import Runtime
from gateway.proxy.stages import RequestHead, authenticate, check_rate_limit
from gateway.proxy.websocket import (
    UPGRADE_HEADERS,
    answer_head,
    open_upstream,
    read_handshake,
    upstream_headers,
)

__all__ = ["Upgrades"]


class Upgrades:
    """The worker's WebSocket handshakes and relays."""

    def __init__(
        self, watch: AuthorityWatch, balancer: Balancer, limiter: Callable[[], RateLimiter]
    ) -> None:
        self._watch = watch
        self._balancer = balancer
        self._limiter = limiter

    async def serve(
        self,
        rt: Runtime,
        switch: SwitchProtocols,
        match: RouteMatch,
        head: RequestHead,
        *,
        method: str,
        path: str,
        query: bytes,
        peer: str,
        scheme: str,
        send: Send,
        record: AccessRecord,
    ) -> Answer | None:
        """Relay the socket until it ends (None), or the answer that refuses the handshake."""
        route = match.route
        offer = read_handshake(route, method, head.headers)
        if isinstance(offer, Refusal):
            return offer
        if route.auth != "public" and rt.origin_check.refusal(head.origins()) is not None:
            return Refusal(403, "WebSockets from this origin are not allowed", "forbidden")
        admitted = await authenticate(
            rt, route, head, method, path, query, record, offered=offer.token
        )
        if not isinstance(admitted, tuple):
            return admitted
        if route.rate_limit is not None:
            limited = await check_rate_limit(route, record, self._limiter())
            if limited is not None:
                return limited

        headers = rt.policy.upstream_request(
            upstream_headers(head.headers, offer.protocols),
            route,
            peer=peer,
            scheme=scheme,
            request_id=head.request_id,
            identity=admitted.identity,
        )
        headers.extend(UPGRADE_HEADERS)
        target_path = match.upstream_path.encode("ascii") + (b"?" + query if query else b"")
        targets = [rt.targets[url] for url in self._balancer.order(route)]
        try:
            _, conn = await open_upstream(
                rt.pool, targets, path=target_path, headers=headers, timeout=route.timeout
            )
        except UpstreamError as exc:
            return Refusal(exc.status, str(exc).capitalize(), exc.code)
        assert conn.headers is not None
        record.upstream_status = conn.status
        answer = rt.policy.downstream_response(conn.headers)
        if conn.status != 101:
            await _relay_answer(conn, answer, route.timeout, send, record, head.request_id)
            return None

        relay = Relay(route.max_body)
        try:
            conn.take_over(relay.upstream_side)
        except OSError:  # the upstream left between its 101 and now: the client is still here
            conn.close()
            return Refusal(502, "The upstream connection failed", "bad_gateway")
        try:
            switch(answer_head(answer, head.request_id), relay.client_side)
        except OSError:  # ClientDisconnected: the client left before its 101
            relay.abort()
            conn.close()
            record.status = 499
            return None
        record.status = 101
        WEBSOCKETS_OPEN.labels(route.name).inc()
        watched = self._watch.follow(admitted, relay.end_authority)
        try:
            await asyncio.shield(relay.done)
        except asyncio.CancelledError:
            relay.abort()  # the end of a graceful stop's wait
            raise
        finally:
            if watched is not None:
                watched.release()
            WEBSOCKETS_OPEN.labels(route.name).dec()
            WEBSOCKET_CLOSES.labels(route.name, relay.reason or "upstream").inc()
            record.close_code = relay.close_code
            record.bytes_in = relay.bytes_in
            record.bytes_out = relay.bytes_out
        return None


async def _relay_answer(
    conn: UpgradeConnection,
    headers: list[tuple[bytes, bytes]],
    timeout: float,
    send: Send,
    record: AccessRecord,
    request_id: bytes,
) -> None:
    """An answer other than 101, relayed as an ordinary one (then the connection closes)."""
    record.status = conn.status
    try:
        await send(
            {
                "type": "http.response.start",
                "status": conn.status,
                "headers": [*headers, (b"x-request-id", request_id)],
            }
        )
        while chunk := await conn.read(timeout):
            record.bytes_out += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except (TimeoutError, UpstreamBroken):
        pass  # the answer is cut: the server closes the connection, the only signal left
    finally:
        conn.close()
