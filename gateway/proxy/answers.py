"""The answers the gateway gives in place of the upstream's, as values a stage returns.

A stage of the front door either passes the request on or returns one of these; the front door
sends it and records it (status, and the authentication failure's label) in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.http.contract import Send
from gateway.http.errors import send_error
from gateway.proxy.access import Denial

__all__ = ["Allowed", "Answer", "PreflightAllowed", "Refusal", "SignInRedirect"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """An error answer: the JSON body, its status and headers; ``reason`` labels auth failures."""

    status: int
    description: str
    code: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    close: bool = False
    reason: str | None = None

    @classmethod
    def of(cls, denial: Denial) -> Refusal:
        """The answer to a request refused by authentication or by the route's demands."""
        return cls(
            denial.status,
            denial.description,
            denial.code,
            tuple(denial.headers()),
            reason=denial.reason,
        )

    async def send(self, send: Send, request_id: bytes) -> None:
        headers = [*self.headers, (b"x-request-id", request_id)]
        await send_error(
            send, self.status, self.description, code=self.code, headers=headers, close=self.close
        )


@dataclass(frozen=True, slots=True)
class SignInRedirect:
    """A browser navigation without a usable token: to the sign-in page, and back after."""

    location: bytes
    reason: str | None
    status: int = 303

    async def send(self, send: Send, request_id: bytes) -> None:
        headers = [
            (b"location", self.location),
            (b"content-length", b"0"),
            (b"cache-control", b"no-store"),
            (b"x-request-id", request_id),
        ]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


@dataclass(frozen=True, slots=True)
class PreflightAllowed:
    """A CORS preflight from an allowed origin, answered without authentication."""

    headers: tuple[tuple[bytes, bytes], ...]
    status: int = 204
    reason: str | None = None

    async def send(self, send: Send, request_id: bytes) -> None:
        headers = [*self.headers, (b"x-request-id", request_id)]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


@dataclass(frozen=True, slots=True)
class Allowed:
    """A forward-auth decision to let the request through: the identity headers, no body."""

    headers: tuple[tuple[bytes, bytes], ...]
    status: int = 200
    reason: str | None = None

    async def send(self, send: Send, request_id: bytes) -> None:
        headers = [
            *self.headers,
            (b"content-length", b"0"),
            (b"cache-control", b"no-store"),
            (b"x-request-id", request_id),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


Answer = Refusal | SignInRedirect | PreflightAllowed | Allowed
