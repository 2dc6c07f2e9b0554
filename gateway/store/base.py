"""The refresh-token store interface, its errors and the rotation rule every backend shares.

Exceptions::

    StoreError                 anything the store could not do
    ├── StoreConfigError       the store URL is malformed or names an unknown scheme
    └── StoreUnavailable       the backend cannot be reached (refused, timed out, locked, ...)

Security: the store only ever sees SHA-256 hashes of refresh tokens, never the tokens, and
neither tokens, hashes nor passwords from the store URL appear in an exception message. A
backend translates its driver's exceptions at exactly one boundary, with `describe_cause`.

A session is a refresh-token *family*: it is born at login with one token, every rotation adds a
token and makes the presented one "previous", and the family dies at its absolute expiry or when
revoked. `judge_rotation` is the single statement of refresh-token rotation with reuse
detection (RFC 9700 §4.14); the SQL backends call it inside their transaction and the Redis Lua
script mirrors it.
"""

from __future__ import annotations

import abc
import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, Self
from urllib.parse import SplitResult, parse_qsl, urlsplit

__all__ = [
    "DEFAULT_REVOCATION_RETENTION",
    "INVALID",
    "PURGE_INTERVAL",
    "CounterWindow",
    "FamilyRecord",
    "RefreshStore",
    "Rotation",
    "RotationOutcome",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
    "check_session_ttls",
    "describe_cause",
    "hash_token",
    "judge_rotation",
    "split_url",
]

DEFAULT_REVOCATION_RETENTION = 24 * 3600.0
"""How long a revocation stays listed by `RefreshStore.revocations` unless told otherwise."""

PURGE_INTERVAL = 60.0
"""SQL backends delete expired rows at most this often (in the callers' `now`), after a write."""


class StoreError(Exception):
    """The store could not do what was asked."""


class StoreConfigError(StoreError):
    """The store URL is malformed or names an unknown scheme."""


class StoreUnavailable(StoreError):
    """The store's backend cannot be reached; a later call may succeed."""


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a refresh token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def split_url(url: str) -> tuple[SplitResult, dict[str, str]]:
    """The parts of a store URL and its query options; StoreConfigError if malformed."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # validates it
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
    except ValueError:
        raise StoreConfigError(f"store: malformed {url.partition(':')[0]} URL") from None
    return parts, query


def describe_cause(exc: BaseException, *, secrets: Iterable[str] = ()) -> str:
    """One short line naming a driver exception, with any of `secrets` blanked out."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RotationOutcome(enum.Enum):
    """What presenting a refresh token meant."""

    ROTATED = "rotated"  # it was the current token: the new hash replaces it
    GRACE = "grace"  # it was the previous token, just rotated: answer, change nothing
    REUSED = "reused"  # an already-rotated token came back: the family is now revoked
    INVALID = "invalid"  # unknown, expired, idle, or its family is revoked


@dataclass(frozen=True, slots=True)
class Rotation:
    """The answer to `RefreshStore.rotate`; the session fields are None only when INVALID."""

    outcome: RotationOutcome
    sid: str | None = None
    sub: str | None = None
    data: str | None = None
    expires_at: float | None = None  # the family's absolute expiry (the cookie's Max-Age)


INVALID = Rotation(RotationOutcome.INVALID)


class CounterWindow(NamedTuple):
    """A fixed-window counter: hits in the current window and seconds until it resets."""

    hits: int
    resets_in: float


@dataclass(frozen=True, slots=True)
class FamilyRecord:
    """A refresh-token family as the SQL backends read it, locked, before rotating."""

    sid: str
    sub: str
    data: str
    expires_at: float
    current_hash: str
    previous_hash: str | None
    rotated_at: float | None
    revoked_at: float | None

    def rotation(self, outcome: RotationOutcome) -> Rotation:
        """The answer carrying this family's session fields."""
        return Rotation(outcome, self.sid, self.sub, self.data, self.expires_at)


def judge_rotation(
    family: FamilyRecord, *, token_hash: str, idle_expires_at: float, now: float, grace: float
) -> RotationOutcome:
    """Classify a presented token of `family` (the Redis Lua script states the same rule)."""
    if family.revoked_at is not None or now >= family.expires_at:
        return RotationOutcome.INVALID
    if token_hash == family.current_hash:
        return RotationOutcome.ROTATED if now < idle_expires_at else RotationOutcome.INVALID
    if (
        token_hash == family.previous_hash
        and family.rotated_at is not None
        and now - family.rotated_at <= grace
    ):
        return RotationOutcome.GRACE
    return RotationOutcome.REUSED


def check_session_ttls(absolute_ttl: float, idle_ttl: float) -> None:
    """Refuse lifetimes that would create a family already dead."""
    if absolute_ttl <= 0 or idle_ttl <= 0:
        raise ValueError("absolute_ttl and idle_ttl must be positive")


class RefreshStore(abc.ABC):
    """Refresh-token families, revocations and rate-limit counters, shared by every worker.

    Every method takes the current time as `now` (seconds since the epoch, as `time.time()`),
    so expiry is decided by the caller's clock and tests need no sleep. Only token hashes
    (`hash_token`) cross this interface.
    """

    @abc.abstractmethod
    async def start_session(
        self,
        *,
        sid: str,
        sub: str,
        token_hash: str,
        data: str,
        now: float,
        absolute_ttl: float,
        idle_ttl: float,
    ) -> None:
        """Create a family (a login) whose first token is `token_hash`; `data` is opaque JSON.

        Raises StoreError if `sid` or `token_hash` already exists.
        """

    @abc.abstractmethod
    async def rotate(
        self, *, token_hash: str, new_token_hash: str, now: float, idle_ttl: float, grace: float
    ) -> Rotation:
        """Present `token_hash`; atomically rotate it to `new_token_hash` if it is current.

        The new token's idle expiry is min(now + idle_ttl, the family's absolute expiry).
        Concurrent calls with one token yield at most one ROTATED.
        """

    @abc.abstractmethod
    async def revoke_token(self, *, token_hash: str, now: float) -> str | None:
        """Revoke the live family `token_hash` belongs to (any of its tokens); its sid or None."""

    @abc.abstractmethod
    async def revoke_subject(self, *, sub: str, now: float) -> list[str]:
        """Revoke every live family of `sub`; the sids revoked by this call."""

    @abc.abstractmethod
    async def link_session(self, *, sid: str, links: Iterable[str]) -> None:
        """Link the family `sid` to `links` (keys of a provider's session and user)."""

    @abc.abstractmethod
    async def revoke_linked(self, *, link: str, now: float) -> list[str]:
        """Revoke every live family linked to `link` (a back-channel logout); the sids."""

    @abc.abstractmethod
    async def revocations(self, *, since: float, now: float) -> list[tuple[str, float]]:
        """(sid, revoked_at) of families revoked at or after `since`, within the retention."""

    @abc.abstractmethod
    async def hit(self, *, key: str, window: float, now: float) -> CounterWindow:
        """Count one hit on `key`; a window opens at the first hit and lasts `window` seconds."""

    @abc.abstractmethod
    async def peek(self, *, key: str, window: float, now: float) -> CounterWindow:
        """The current window of `key` without counting; (0, 0.0) when none is open.

        `window` is accepted for symmetry with `hit`; an open window keeps the length it
        was opened with.
        """

    @abc.abstractmethod
    async def reset(self, *, key: str) -> None:
        """Forget the counter `key` (a successful login clears its failures)."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return if the backend answers; raise StoreUnavailable otherwise."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
