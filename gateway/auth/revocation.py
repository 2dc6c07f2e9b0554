"""Revoked sessions, known to every worker within a second without a store call per request.

``RevocationSet`` is the ``Container[str]`` of revoked ``sid``s the verifier checks on every
token (cache hits included): a dictionary lookup. ``RevocationFeed`` fills it by asking the store
for revocations every ``interval`` (0.5 s), so a logout or ``gateway sessions revoke`` on any
worker or replica stops the family's access tokens everywhere within about one interval.

- An entry is kept for ``access_ttl + leeway`` after its revocation: every access token of that
  session was minted before it, so none can still be valid afterwards, and the set stays small.
- The first poll reaches back that far too, so a restarted gateway refuses tokens revoked before
  it started; it runs before the gateway reports started, bounded to ``STARTUP_WAIT`` seconds.
- Later polls ask from the previous poll's time minus ``OVERLAP``: a revocation stamped by a
  replica whose clock runs a little behind, or committed just after our read, is still seen.
- Whoever must act on a revocation at once (the open WebSockets and event streams of that
  session, ``proxy/authority.py``) ``subscribe``s: it is told of each newly revoked ``sid``,
  from a local logout or a poll, the moment it is added; nothing is polled per connection.
- A store outage is logged once when it starts and once when it ends (one line each, no
  traceback); polling goes on, and the set keeps what it knew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Container

from gateway.config import TokensConfig
from gateway.store import DEFAULT_REVOCATION_RETENTION, RefreshStore, StoreError

__all__ = ["OVERLAP", "RevocationFeed", "RevocationSet", "keep_for", "retention_for"]

log = logging.getLogger(__name__)

OVERLAP = 30.0
STARTUP_WAIT = 2.0


def keep_for(tokens: TokensConfig) -> float:
    """How long a revocation matters: until the session's last access token has expired."""
    return tokens.access_ttl + tokens.leeway


def retention_for(tokens: TokensConfig) -> float:
    """How long the store must list a revocation, so a restarted gateway still learns of it."""
    return max(DEFAULT_REVOCATION_RETENTION, keep_for(tokens) + OVERLAP)


class RevocationSet(Container[str]):
    """Revoked session ids, each forgotten ``keep`` seconds after its revocation."""

    def __init__(self, keep: float) -> None:
        self.keep = keep
        self._until: dict[str, float] = {}
        self._listeners: list[Callable[[str], None]] = []

    def __contains__(self, sid: object) -> bool:
        return sid in self._until

    def __len__(self) -> int:
        return len(self._until)

    def add(self, sid: str, revoked_at: float) -> None:
        """Record ``sid`` as revoked at ``revoked_at`` (seconds since the epoch)."""
        until = revoked_at + self.keep
        known = self._until.get(sid)
        if known is None or until > known:
            self._until[sid] = until
        if known is None:
            for listener in self._listeners:
                # One failing listener must not keep the others (the sockets of every other
                # worker's session) from hearing of it: the sid is known from now on.
                try:
                    listener(sid)
                except Exception:
                    log.exception("a revocation listener failed")

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(sid)`` for every session revoked from now on."""
        self._listeners.append(listener)

    def prune(self, now: float) -> None:
        """Forget revocations whose access tokens have all expired by ``now``."""
        expired = [sid for sid, until in self._until.items() if until <= now]
        for sid in expired:
            del self._until[sid]


class RevocationFeed:
    """Polls the store's revocations into a ``RevocationSet``."""

    def __init__(
        self,
        store: RefreshStore,
        revoked: RevocationSet,
        *,
        interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._revoked = revoked
        self._interval = interval
        self._clock = clock
        self._since: float | None = None
        self._failing = False
        self.first_poll = asyncio.Event()

    async def poll(self) -> int:
        """Ask the store once; the number of revocations read. Raises ``StoreError``."""
        now = self._clock()
        since = now - self._revoked.keep if self._since is None else self._since - OVERLAP
        found = await self._store.revocations(since=since, now=now)
        for sid, revoked_at in found:
            self._revoked.add(sid, revoked_at)
        self._revoked.prune(now)
        self._since = now
        return len(found)

    async def run(self) -> None:
        """Poll until cancelled, logging one line when the store goes away and comes back."""
        while True:
            try:
                await self.poll()
            except Exception as exc:  # StoreError, or a backend bug: keep polling either way
                if not self._failing:
                    reason = str(exc) if isinstance(exc, StoreError) else type(exc).__name__
                    log.warning("revocation updates paused: %s (retrying)", reason)
                    self._failing = True
            else:
                if self._failing:
                    log.warning("revocation updates resumed: the store is reachable again")
                    self._failing = False
            self.first_poll.set()
            await asyncio.sleep(self._interval)

    async def wait_first_poll(self, timeout: float = STARTUP_WAIT) -> None:
        """Wait (at most ``timeout``) for the first poll to succeed or fail."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.first_poll.wait(), timeout)
