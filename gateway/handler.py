"""One proxied request from socket to upstream and back, as pure ASGI.

The order is the security argument: size limits and framing first, then the path is normalised
once (what is matched is what is forwarded), the route chosen, the token checked against that
route, the body limit enforced, and only then is the upstream contacted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send

from gateway.access import NO_TOKEN, Denial, invalid_token
from gateway.auth.errors import InvalidRequest, TokenError
from gateway.auth.extract import extract_token
from gateway.http_errors import send_error
from gateway.paths import PathError, normalise_path
from gateway.proxy import (
    BodyTooLarge,
    ClientGone,
    Exchange,
    UpstreamError,
    forward,
    request_body,
)
from gateway.routing import MethodNotAllowed
from gateway.runtime import Runtime

MAX_HEADER_BYTES = 32 * 1024


def new_request_id() -> bytes:
    return os.urandom(16).hex().encode()


class ProxyHandler:
    """Serves every path the gateway does not own from the current ``Runtime``."""

    def __init__(self, runtime: Callable[[], Runtime], clock: Callable[[], float] = time.monotonic):
        self._runtime = runtime
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rt = self._runtime()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        size = 0
        hosts = 0
        request_id: bytes | None = None
        content_length: bytes | None = None
        for name, value in headers:
            size += len(name) + len(value) + 4
            if name == b"host":
                hosts += 1
            elif name == b"x-request-id":
                request_id = value
            elif name == b"content-length":
                content_length = value
        if request_id is None or len(request_id) > 200 or not request_id.isascii():
            request_id = new_request_id()
        echo = [(b"x-request-id", request_id)]
        if size > MAX_HEADER_BYTES:
            await send_error(
                send, 431, "The request headers are too large", headers=echo, close=True
            )
            return
        if hosts != 1:
            await send_error(
                send, 400, "The request must carry exactly one Host header", headers=echo
            )
            return
        try:
            path = normalise_path(
                scope.get("raw_path") or scope["path"].encode(),
                allow_params=rt.config.server.allow_path_params,
            )
        except PathError as exc:
            await send_error(send, 400, str(exc).capitalize(), headers=echo)
            return
        method: str = scope["method"]
        match = rt.table.match(method, path)
        if match is None:
            await send_error(send, 404, "No route matches this path", headers=echo)
            return
        if isinstance(match, MethodNotAllowed):
            await send_error(
                send,
                405,
                "This route does not allow the method",
                headers=[(b"allow", ", ".join(match.allow).encode()), *echo],
            )
            return
        route = match.route
        access = rt.access[route.name]
        claims: dict[str, Any] | None = None
        if route.auth != "public":
            try:
                token = extract_token(headers, scope.get("query_string", b""), rt.access_cookie)
            except InvalidRequest as exc:
                await send_error(send, 400, exc.description, headers=echo)
                return
            denial: Denial | None = None
            if token is None:
                if route.auth == "required":
                    denial = NO_TOKEN
            else:
                try:
                    claims = dict(await rt.verifier.verify(token))
                except TokenError as exc:
                    denial = invalid_token(exc)
                else:
                    denial = access.check(claims)
            if denial is not None:
                await send_error(
                    send,
                    denial.status,
                    denial.description,
                    code=denial.code,
                    headers=[*denial.headers(), *echo],
                )
                return
        limit = route.max_body
        has_body = content_length is not None or any(
            name == b"transfer-encoding" for name, _ in headers
        )
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                await send_error(send, 400, "Invalid Content-Length", headers=echo, close=True)
                return
            if declared > limit:
                await send_error(
                    send, 413, "The request body is larger than this route allows", headers=echo
                )
                return
            has_body = declared > 0
        client = scope.get("client")
        peer = client[0] if client else None
        upstream_headers = rt.policy.upstream_request(
            headers,
            route,
            peer=peer,
            scheme=scope.get("scheme", "http"),
            request_id=request_id,
            claims=claims,
        )
        exchange = Exchange()
        query = scope.get("query_string", b"")
        url = rt.upstream_for(route) + match.upstream_path
        if query:
            url += "?" + query.decode("latin-1")
        try:
            await forward(
                rt.session,
                method=method,
                url=url,
                headers=upstream_headers,
                body=request_body(receive, limit, exchange) if has_body else None,
                timeout=rt.timeouts[route.name],
                send=send,
                response_headers=lambda raw: [*rt.policy.downstream_response(raw), *echo],
                exchange=exchange,
                clock=self._clock,
            )
        except BodyTooLarge:
            if not exchange.response_started:
                await send_error(
                    send,
                    413,
                    "The request body is larger than this route allows",
                    headers=echo,
                    close=True,
                )
        except ClientGone:
            return
        except UpstreamError as exc:
            if not exchange.response_started:
                await send_error(
                    send, exc.status, str(exc).capitalize(), code=exc.code, headers=echo
                )
