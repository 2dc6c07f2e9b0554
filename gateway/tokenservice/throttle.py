"""Failed-login limits (``users.max_failures`` and ``lockout``), counted in the store.

Configured in docs/configuration.md#users.

Two fixed-window counters, shared by every worker and replica through the store:

- per username: ``max_failures`` failures within ``lockout`` lock that name until the window
  passes. The name is case-folded and hashed, so ``Alice`` and ``ALICE`` share one counter even
  when a ``verify_url`` service ignores case, and no typed-in secret is stored verbatim;
- per client address: four times as many, against one address guessing across many names. An
  IPv6 client is counted by its /64, which one host usually holds whole.

Every attempt is counted *before* its password is checked, with the store's atomic ``hit``, and
the count it returns decides: checking first and counting the failure afterwards would let a
burst of requests all pass the check before any failure was recorded, as many guesses as fit in
one burst. An attempt that turns out not to be a failure is then given back, counted on a
companion "undone" counter whose window ends with the counter's own: a success (its address
budget; the name's counter is cleared outright), an attempt refused by a locked name (its
address budget: a locked name does not spend the address's), and one the user directory could
not check (both, so an outage never locks anyone out). A counter is over its limit when its
attempts minus the ones given back exceed the limit; a give-back lands only after its attempt
was counted, so the in-flight attempts of a burst only ever make the check stricter, and at most
the limit of them reach the password check and fail.

The address is counted first: a locked address is refused without touching any name's counter,
so an address already locked cannot go on locking other people's names. A locked request is refused
before any password is hashed, even with the right password: a lockout that a correct guess
could pass would still let the guessing go on. A success clears the username's counter, not the
address's.

The client address is the one ``HeaderPolicy.client_address`` gives: ``X-Forwarded-For`` is
believed only from ``server.trusted_proxies``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.store import RefreshStore

__all__ = ["ADDRESS_FACTOR", "Attempt", "LoginThrottle"]

ADDRESS_FACTOR = 4

# A give-back's window ends this much before its counter's, never after it, though the end is
# recomputed from a float: for that instant the counter is stricter, never looser.
_UNDO_MARGIN = 0.001


@dataclass(frozen=True, slots=True)
class _Counter:
    key: str
    undone: str  # the attempts given back
    limit: int


@dataclass(frozen=True, slots=True)
class _Counted:
    counter: _Counter
    window_end: float  # when the window this attempt was counted in passes


@dataclass(frozen=True, slots=True)
class Attempt:
    """One login attempt, already counted; ``retry_after`` (seconds) is set when it is refused."""

    retry_after: int | None
    by_address: _Counted | None = None
    by_name: _Counted | None = None


class LoginThrottle:
    """Counts login attempts per username and per client address, and refuses locked ones."""

    def __init__(
        self,
        store: RefreshStore,
        *,
        max_failures: int,
        lockout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._max_failures = max_failures
        self._lockout = lockout
        self._clock = clock

    async def attempt(self, username: str, address: str) -> Attempt:
        """Count an attempt against the address, then the name; refused when either is locked."""
        now = self._clock()
        by_address, wait = await self._count(_address_counter(address, self._max_failures), now)
        if wait is not None:
            return Attempt(wait)
        by_name, wait = await self._count(_user_counter(username, self._max_failures), now)
        if wait is not None:
            await self._give_back(by_address)  # a locked name does not spend the address's budget
            return Attempt(wait)
        return Attempt(None, by_address, by_name)

    async def succeeded(self, attempt: Attempt) -> None:
        """Clear the name's counter, and give the attempt back to the address."""
        if attempt.by_name is not None:
            await self._store.reset(key=attempt.by_name.counter.key)
            await self._store.reset(key=attempt.by_name.counter.undone)
        await self._give_back(attempt.by_address)

    async def not_checked(self, attempt: Attempt) -> None:
        """Give the attempt back to the name and the address: its password was never checked."""
        await self._give_back(attempt.by_name)
        await self._give_back(attempt.by_address)

    async def _count(self, counter: _Counter, now: float) -> tuple[_Counted, int | None]:
        """Count one attempt; with the seconds to wait when that puts the counter over."""
        window = await self._store.hit(key=counter.key, window=self._lockout, now=now)
        if window.hits > counter.limit:
            undone = await self._store.peek(key=counter.undone, window=self._lockout, now=now)
            if window.hits - undone.hits > counter.limit:
                return _Counted(counter, now), max(1, math.ceil(window.resets_in))
        return _Counted(counter, now + window.resets_in), None

    async def _give_back(self, counted: _Counted | None) -> None:
        if counted is None:
            return
        now = self._clock()
        remaining = counted.window_end - now - _UNDO_MARGIN
        if remaining > 0:  # else the window it was counted in has passed already
            await self._store.hit(key=counted.counter.undone, window=remaining, now=now)


def _user_counter(username: str, max_failures: int) -> _Counter:
    digest = hashlib.sha256(username.casefold().encode("utf-8", "replace")).hexdigest()[:32]
    return _Counter(f"login:user:{digest}", f"login:user-undone:{digest}", max_failures)


def _address_counter(address: str, max_failures: int) -> _Counter:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        name = address[:64]
    else:
        name = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
    limit = max_failures * ADDRESS_FACTOR
    return _Counter(f"login:addr:{name}", f"login:addr-undone:{name}", limit)
