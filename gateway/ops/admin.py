"""The admin listener: ``/healthz``, ``/readyz`` and ``/metrics``, never on the public port.

What each answers: docs/behaviour.md#endpoints.
"""

from __future__ import annotations

import json

from starlette.types import Receive, Scope, Send

from gateway.http.errors import error_body
from gateway.observability import render_metrics
from gateway.ops.app import GatewayApp

_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"


class AdminApp:
    """Answers health, readiness and metrics for one worker (metrics for all of them)."""

    def __init__(self, gateway: GatewayApp) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            await _reply(send, 200, b"application/json", b'{"status":"ok"}')
        elif path == "/readyz":
            problems = await self.gateway.readiness()
            degraded = self.gateway.degraded()
            # Degraded still serves (the last good state of a broken input): ready, with reasons.
            if problems:
                answer: dict[str, object] = {"status": "not ready", "reasons": problems + degraded}
            elif degraded:
                answer = {"status": "degraded", "reasons": degraded}
            else:
                answer = {"status": "ready"}
            body = json.dumps(answer).encode()
            await _reply(send, 503 if problems else 200, b"application/json", body)
        elif path == "/metrics":
            await _reply(send, 200, _PROMETHEUS, render_metrics())
        else:
            body = error_body("not_found", "The admin listener serves /healthz, /readyz, /metrics")
            await _reply(send, 404, b"application/json", body)


async def _reply(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
