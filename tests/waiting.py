"""Waiting for something to happen: one helper instead of a polling loop in every test.

``eventually(check)`` calls ``check`` until it returns a truthy value without raising
``AssertionError``, and returns that value; after ``timeout`` seconds it fails with the last
assertion (or says what the last value was). Any other exception ends the wait at once, so a
check can tell a process that died from one that is still starting.

A check written with ``assert`` returns what it looked at (the response, the lines), which
then is the value of ``eventually``. Sleeps that are the point of a test (a token must
expire, a window must pass, nothing may happen meanwhile) are not waits for something and
stay plain sleeps.

``eventually_async`` is the same loop for coroutine tests, whose server runs on the test's
own event loop: it sleeps with ``asyncio.sleep`` so that loop keeps running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class _NotYet:
    """What one attempt gives when the check has not passed yet."""


_NOT_YET = _NotYet()


def _attempt(check: Callable[[], T], deadline: float, timeout: float) -> T | _NotYet:
    """Run ``check`` once: its value when it passed, ``_NOT_YET`` or, once time is up, fail."""
    try:
        value = check()
    except AssertionError:
        if time.monotonic() >= deadline:
            raise
        return _NOT_YET
    if value:
        return value
    if time.monotonic() >= deadline:
        raise AssertionError(f"still {value!r} after {timeout:g} s")
    return _NOT_YET


def eventually(check: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.05) -> T:
    """``check()``'s first truthy value, retried every ``interval`` for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while isinstance(value := _attempt(check, deadline, timeout), _NotYet):
        time.sleep(interval)
    return value


async def eventually_async(
    check: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.02
) -> T:
    """``eventually`` for coroutine tests: the event loop runs while it waits."""
    deadline = time.monotonic() + timeout
    while isinstance(value := _attempt(check, deadline, timeout), _NotYet):
        await asyncio.sleep(interval)
    return value
