"""The gateway's own answers: one JSON body shape, sent straight over ASGI (SPEC §5.2)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import Send

_REASONS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
    431: "request_header_fields_too_large",
    502: "bad_gateway",
    503: "store_unavailable",
    504: "gateway_timeout",
}


def error_body(code: str, description: str) -> bytes:
    """The JSON error document every gateway error carries."""
    return json.dumps({"error": code, "error_description": description}).encode()


async def send_error(
    send: Send,
    status: int,
    description: str,
    *,
    code: str | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
    close: bool = False,
) -> None:
    """Answer with ``status`` and the JSON error body; ``code`` defaults by status."""
    body = error_body(code or _REASONS.get(status, "error"), description)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *headers,
    ]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
