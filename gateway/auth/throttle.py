"""Failed-login limits (SPEC §3 ``users.max_failures`` and ``lockout``), counted in the store.

Two fixed-window counters, shared by every worker and replica through the store:

- per username: ``max_failures`` failures within ``lockout`` lock that name until the window
  passes. The name is case-folded and hashed, so ``Alice`` and ``ALICE`` share one counter even
  when a ``verify_url`` service ignores case, and no typed-in secret is stored verbatim;
- per client address: four times as many, against one address guessing across many names. An
  IPv6 client is counted by its /64, which one host usually holds whole.

A locked request is refused before any password is hashed, even with the right password: a
lockout that a correct guess could pass would still let the guessing go on. A success clears
the username's counter, not the address's.

The client address is the one ``HeaderPolicy.client_address`` gives: ``X-Forwarded-For`` is
believed only from ``server.trusted_proxies``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable, Iterable

from gateway.store import RefreshStore

__all__ = ["ADDRESS_FACTOR", "LoginThrottle"]

ADDRESS_FACTOR = 4


class LoginThrottle:
    """Counts failed logins per username and per client address."""

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

    async def retry_after(self, username: str, address: str) -> int | None:
        """Seconds until a locked name or address may try again, or None when not locked."""
        now = self._clock()
        wait = 0.0
        for key, limit in self._limits(username, address):
            window = await self._store.peek(key=key, window=self._lockout, now=now)
            if window.hits >= limit:
                wait = max(wait, window.resets_in)
        return max(1, math.ceil(wait)) if wait > 0 else None

    async def failed(self, username: str, address: str) -> None:
        """Count one failed login against the name and the address."""
        now = self._clock()
        for key, _ in self._limits(username, address):
            await self._store.hit(key=key, window=self._lockout, now=now)

    async def succeeded(self, username: str) -> None:
        """Forget the name's failures."""
        await self._store.reset(key=_user_key(username))

    def _limits(self, username: str, address: str) -> Iterable[tuple[str, int]]:
        yield _user_key(username), self._max_failures
        yield _address_key(address), self._max_failures * ADDRESS_FACTOR


def _user_key(username: str) -> str:
    digest = hashlib.sha256(username.casefold().encode("utf-8", "replace")).hexdigest()
    return f"login:user:{digest[:32]}"


def _address_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"login:addr:{address[:64]}"
    if ip.version == 6:
        return f"login:addr:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"login:addr:{ip}"
