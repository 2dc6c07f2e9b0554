"""The end of a token's authority over a long-lived connection: its expiry, or a revocation.

A WebSocket or an event stream outlives the check made when it opened. Each one is watched
here until it ends: ``watch`` files it under its deadline (``exp`` plus the leeway) and its
session (``sid``). One timer for the whole worker, armed for the earliest deadline, ends those
whose time has come; the revocation set tells the watch of every newly revoked session (a
logout here, or one the store feed brought from another replica), and the watch ends that
session's connections at once. An idle connection costs no timer and no task of its own.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable

from gateway.auth.revocation import RevocationSet
from gateway.auth.token_cache import CachedToken

__all__ = ["EXPIRED", "REVOKED", "AuthorityEnded", "AuthorityWatch", "Watched"]

EXPIRED = "token expired"
REVOKED = "session revoked"
_COMPACT_AT = 1024  # forgotten entries tolerated in the heap before it is rebuilt


class Watched:
    """One watched connection; ``release`` when it ends by itself."""

    __slots__ = ("_end", "_watch", "deadline", "sid")

    def __init__(
        self, watch: AuthorityWatch, deadline: float, sid: str | None, end: Callable[[str], None]
    ) -> None:
        self._watch = watch
        self.deadline = deadline
        self.sid = sid
        self._end: Callable[[str], None] | None = end

    def release(self) -> None:
        if self._end is not None:
            self._end = None
            self._watch._forget(self)

    def fire(self, why: str) -> None:
        end, self._end = self._end, None
        if end is not None:
            self._watch._forget(self)
            end(why)


class AuthorityWatch:
    """Every watched connection of a worker, by deadline and by session."""

    def __init__(
        self, revoked: RevocationSet, *, leeway: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._revoked = revoked
        self.leeway = leeway  # the configuration's, kept current by reloads
        self._clock = clock
        self._heap: list[tuple[float, int, Watched]] = []
        self._order = itertools.count()
        self._by_sid: dict[str, set[Watched]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = float("inf")
        self._forgotten = 0
        self.count = 0
        revoked.subscribe(self._on_revoked)

    def watch(self, deadline: float, sid: str | None, end: Callable[[str], None]) -> Watched:
        """Call ``end(EXPIRED)`` at ``deadline`` (seconds since the epoch) or ``end(REVOKED)``
        when ``sid`` is revoked, whichever comes first, unless released before."""
        entry = Watched(self, deadline, sid, end)
        self.count += 1
        if sid is not None:
            if sid in self._revoked:  # revoked while the connection was being opened
                entry.fire(REVOKED)
                return entry
            self._by_sid.setdefault(sid, set()).add(entry)
        heapq.heappush(self._heap, (deadline, next(self._order), entry))
        if deadline < self._armed_for:
            self._arm(deadline)
        return entry

    def follow(self, token: CachedToken, end: Callable[[str], None]) -> Watched | None:
        """Watch a connection opened with ``token`` until ``exp`` plus the leeway; None for a
        request without a token (a public route, anonymous on an optional one)."""
        if not token.claims:
            return None
        return self.watch(token.exp + self.leeway, token.sid, end)

    def _forget(self, entry: Watched) -> None:
        self.count -= 1
        if entry.sid is not None:
            same = self._by_sid.get(entry.sid)
            if same is not None:
                same.discard(entry)
                if not same:
                    del self._by_sid[entry.sid]
        self._forgotten += 1
        if self._forgotten > _COMPACT_AT and self._forgotten > len(self._heap) // 2:
            self._heap = [item for item in self._heap if item[2]._end is not None]
            heapq.heapify(self._heap)
            self._forgotten = 0

    def _on_revoked(self, sid: str) -> None:
        for entry in list(self._by_sid.get(sid, ())):
            entry.fire(REVOKED)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = deadline
        delay = max(0.0, deadline - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._armed_for = float("inf")
        now = self._clock()
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)[2]
            if entry._end is None:
                self._forgotten = max(0, self._forgotten - 1)
            else:
                entry.fire(EXPIRED)
        if heap:
            self._arm(heap[0][0])


class AuthorityEnded(Exception):
    """The token behind a streamed answer expired or its session was revoked."""
