"""eventually: retries a check until it passes, returns its value, fails with the last error."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.waiting import eventually, eventually_async


def answers(*results: object) -> Callable[[], object]:
    """A check giving ``results`` in turn; an AssertionError in them is raised."""
    left = list(results)

    def check() -> object:
        result = left.pop(0) if len(left) > 1 else left[0]
        if isinstance(result, AssertionError):
            raise result
        return result

    return check


def test_the_first_truthy_value_is_returned() -> None:
    assert eventually(answers(None, "", 0, "done"), interval=0) == "done"


def test_a_failed_assertion_is_retried() -> None:
    assert eventually(answers(AssertionError("not yet"), [1]), interval=0) == [1]


def test_the_last_assertion_is_the_failure() -> None:
    with pytest.raises(AssertionError, match="still starting"):
        eventually(answers(AssertionError("still starting")), timeout=0.05, interval=0.01)


def test_a_value_that_stays_falsy_is_named_in_the_failure() -> None:
    with pytest.raises(AssertionError, match=r"still \[\] after 0.05 s"):
        eventually(answers([]), timeout=0.05, interval=0.01)


def test_another_exception_ends_the_wait_at_once() -> None:
    def dead() -> bool:
        raise RuntimeError("process exited")

    started = time.monotonic()
    with pytest.raises(RuntimeError):
        eventually(dead, timeout=5)
    assert time.monotonic() - started < 1


async def test_the_async_form_waits_the_same_way() -> None:
    assert await eventually_async(answers(AssertionError("no"), None, 7), interval=0) == 7
