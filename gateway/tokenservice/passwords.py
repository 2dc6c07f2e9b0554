"""Password hashing with argon2id, and a check that costs the same whether or not the user exists.

Security reasoning:

- A login for an unknown user must take as long as one with a wrong password, or the answer
  time tells an attacker which usernames exist. ``PasswordCheck.verify`` with no hash verifies
  against a dummy hash made with the *same parameters* as the users' own hashes (the most common
  parameter set in the users file), so both paths run one argon2 verification of equal cost.
- Argon2id is memory-hard by design (64 MiB per verification with the defaults): a burst of
  logins verified all at once could exhaust memory, so at most ``concurrency`` verifications run
  at a time (one per CPU by default) in worker threads, never on the event loop.
- A stored hash that argon2 cannot parse is treated as a mismatch, never as an error: the
  answer stays ``invalid_credentials``, and the hash itself is never logged.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterable

from argon2 import Parameters, PasswordHasher, extract_parameters, profiles
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["PasswordCheck", "hash_password", "is_argon2_hash"]

_ParameterKey = tuple[int, int, int, int, int, int, int]


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` with argon2-cffi's recommended parameters."""
    return PasswordHasher().hash(password)


def is_argon2_hash(value: str) -> bool:
    """Whether ``value`` is an encoded argon2 hash this module can verify."""
    try:
        extract_parameters(value)
    except (InvalidHashError, ValueError):
        return False
    return True


def _key(parameters: Parameters) -> _ParameterKey:
    return (
        parameters.type.value,
        parameters.version,
        parameters.salt_len,
        parameters.hash_len,
        parameters.time_cost,
        parameters.memory_cost,
        parameters.parallelism,
    )


class PasswordCheck:
    """Verifies passwords in worker threads, a bounded number at a time."""

    def __init__(self, concurrency: int | None = None) -> None:
        self._hasher = PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 2)
        self._parameters: Parameters = profiles.RFC_9106_LOW_MEMORY  # PasswordHasher's default
        self._dummies: dict[_ParameterKey, str] = {}

    def calibrate(self, hashes: Iterable[str]) -> None:
        """Make the dummy hash use the most common parameters among ``hashes``.

        Blocking (it may hash once): call it from a worker thread.
        """
        counts: dict[_ParameterKey, tuple[int, Parameters]] = {}
        for value in hashes:
            try:
                parameters = extract_parameters(value)
            except (InvalidHashError, ValueError):
                continue
            key = _key(parameters)
            seen = counts.get(key)
            counts[key] = ((seen[0] if seen else 0) + 1, parameters)
        if counts:
            self._parameters = max(counts.values(), key=lambda item: item[0])[1]
        self._dummy()  # made now, so that the first unknown user does not pay for it

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash``; with None, the same work and False."""
        async with self._slots:
            matched = await asyncio.to_thread(self._verify, stored_hash, password)
        return matched and stored_hash is not None

    def _verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            target = self._dummy() if stored_hash is None else stored_hash
            return self._hasher.verify(target, password)
        except (VerificationError, InvalidHashError, ValueError):
            return False

    def _dummy(self) -> str:
        parameters = self._parameters
        key = _key(parameters)
        dummy = self._dummies.get(key)
        if dummy is None:
            hasher = PasswordHasher.from_parameters(parameters)
            dummy = self._dummies[key] = hasher.hash(secrets.token_urlsafe(16))
        return dummy
