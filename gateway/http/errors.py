"""The gateway's own answers: one JSON body shape, built here and nowhere else.

Every error the gateway gives, whichever layer gives it, is ``{"error": code,
"error_description": text}`` (docs/behaviour.md#errors): the front door's refusals
(``send_error``), the HTTP server's answers to requests it cannot hand over (``refusal``,
``answer_messages``) and the token service's (which wraps ``error_body`` in a response).
"""

from __future__ import annotations

import http
import json
from collections.abc import Iterable

from gateway.http.contract import Message, Send

__all__ = [
    "STATUS_LINES",
    "answer_messages",
    "error_body",
    "refusal",
    "send_error",
    "status_line",
]

_REASONS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    429: "rate_limited",
    431: "request_header_fields_too_large",
    502: "bad_gateway",
    503: "store_unavailable",
    504: "gateway_timeout",
}

# The answers the HTTP server gives itself, to requests it cannot hand to the application whole.
_REFUSALS = {
    400: "The request is malformed",
    408: "The request body did not arrive in time",
    431: "The request headers are too large",
}


def error_body(code: str, description: str) -> bytes:
    """The JSON error document every gateway error carries."""
    return json.dumps({"error": code, "error_description": description}).encode()


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and its line end."""
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


STATUS_LINES = {status: status_line(status) for status in range(100, 600)}


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


def answer_messages(status: int, code: str, description: str) -> list[Message]:
    """The ASGI messages of an error answer that closes the connection."""
    body = error_body(code, description)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


def refusal(status: int, request_id: str) -> bytes:
    """The raw answer to a request the server refused (400, 408, 431), closing the connection."""
    body = error_body(_REASONS[status], _REFUSALS[status])
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
