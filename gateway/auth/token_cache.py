"""The verified-token cache: a token that passed every check is served from memory until its exp.

A hit is a dictionary lookup and one comparison, so the cost of a repeat request is flat whatever
the algorithm. The cache is bounded: when full, the oldest eighth of the entries (insertion order,
which for tokens of similar lifetimes is also expiry order) is dropped in one batch, so memory
stays flat under any number of distinct tokens and eviction costs O(1) per insertion on average.
Hits do not reorder entries: the hit path stays free of writes.

Stored per token: its ``exp``, its ``sid`` (revocation is checked on every hit by the verifier, a
logged-out session's tokens must stop at once), its claims, and what every request would
otherwise derive from them again: the scopes, the subject and the rendered identity headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any, NamedTuple

__all__ = ["CachedToken", "TokenCache"]


class CachedToken(NamedTuple):
    """A verified token: served while ``now < exp``."""

    exp: float
    sid: str | None
    claims: Mapping[str, Any]
    scopes: frozenset[str] = frozenset()
    sub: str | None = None
    identity: tuple[tuple[bytes, bytes], ...] = ()


class TokenCache:
    """A bounded map from token string to its verified claims."""

    __slots__ = ("_batch", "_entries", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 0:
            raise ValueError("cache size cannot be negative")
        self.maxsize = maxsize
        self._batch = max(1, maxsize // 8)
        self._entries: dict[str, CachedToken] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, now: float) -> CachedToken | None:
        """The entry for ``token`` if it has not expired."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if now < entry.exp:
            return entry
        del self._entries[token]
        return None

    def put(self, token: str, entry: CachedToken) -> None:
        """Remember a verified token, evicting the oldest batch when full."""
        if self.maxsize == 0:
            return
        entries = self._entries
        if len(entries) >= self.maxsize and token not in entries:
            for old in list(islice(entries, self._batch)):
                del entries[old]
        entries[token] = entry

    def clear(self) -> None:
        self._entries.clear()
