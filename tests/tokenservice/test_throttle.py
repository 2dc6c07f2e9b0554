"""Failed-login limits per username and per client address (docs/configuration.md#users)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.store.sqlite import SQLiteStore
from gateway.tokenservice.throttle import LoginThrottle
from tests.tokenservice.conftest import SECRETS, USERS, Service, config_text, launch, login

# Each test logs in from its own client address (X-Forwarded-For from a trusted proxy), so the
# per-address counters of one test never reach another's.
LIMITS = {"file": "./users.yaml", "max_failures": 3, "lockout": "15m"}


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, upstream_port: int) -> Iterator[Service]:
    """A gateway that locks a name after 3 failures (an address after 12) for 15 minutes.

    Two workers, so that the requests of a burst are counted by two processes at once.
    """
    running = launch(
        tmp_path_factory.mktemp("strict"),
        config_text(upstream_port, users=LIMITS, trusted_proxies=["127.0.0.1/32"]),
        workers=2,
    )
    yield running
    running.stop()


def attempt(service: Service, username: str, password: str, client: str) -> tuple[int, str | None]:
    answer = login(service.url, username, password, headers={"x-forwarded-for": client})
    return answer.status_code, answer.headers.get("retry-after")


def test_repeated_wrong_passwords_lock_the_username_with_retry_after(strict: Service) -> None:
    statuses = [attempt(strict, "alice", "wrong-password-9", "203.0.113.1")[0] for _ in range(3)]
    assert statuses == [401, 401, 401]
    status, retry_after = attempt(strict, "alice", "wrong-password-9", "203.0.113.1")
    assert status == 429
    assert retry_after is not None and 1 <= int(retry_after) <= 900


def test_a_locked_username_is_refused_even_with_the_right_password_from_anywhere(
    strict: Service,
) -> None:
    for _ in range(3):
        attempt(strict, "bob", "wrong-password-9", "203.0.113.2")
    answer = login(strict.url, "bob", USERS["bob"][0], headers={"x-forwarded-for": "198.51.100.9"})
    assert answer.status_code == 429
    assert answer.json()["error"] == "rate_limited"
    assert "set-cookie" not in answer.headers


def test_the_username_lock_ignores_letter_case(strict: Service) -> None:
    for name in ("Carol", "CAROL", "carol"):
        attempt(strict, name, "wrong-password-9", "203.0.113.3")
    assert attempt(strict, "cArOl", "wrong-password-9", "203.0.113.3")[0] == 429


def test_a_successful_login_clears_the_usernames_failures(strict: Service) -> None:
    for _ in range(2):
        attempt(strict, "dave", "wrong-password-9", "203.0.113.4")
    assert attempt(strict, "dave", USERS["dave"][0], "203.0.113.4")[0] == 200
    statuses = [attempt(strict, "dave", "wrong-password-9", "203.0.113.4")[0] for _ in range(2)]
    assert statuses == [401, 401]


def test_one_address_guessing_across_names_is_locked_after_four_times_the_limit(
    strict: Service,
) -> None:
    client = "203.0.113.5"
    statuses = [attempt(strict, f"guess-{n}", "wrong-password-9", client)[0] for n in range(12)]
    assert statuses == [401] * 12
    status, retry_after = attempt(strict, "erin", USERS["erin"][0], client)
    assert status == 429 and retry_after is not None
    assert attempt(strict, "erin", USERS["erin"][0], "203.0.113.6")[0] == 200


def burst(service: Service, attempts: list[tuple[str, str, str]]) -> list[int]:
    """The statuses of (username, password, client address) logins sent all at once."""
    SECRETS.update(password for _, password, _ in attempts if len(password) >= 8)

    async def send_all() -> list[int]:
        limits = httpx.Limits(max_connections=len(attempts))
        async with httpx.AsyncClient(base_url=service.url, timeout=30, limits=limits) as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/auth/login",
                        json={"username": username, "password": password},
                        headers={"x-forwarded-for": address},
                    )
                    for username, password, address in attempts
                )
            )
        return [answer.status_code for answer in answers]

    return asyncio.run(send_all())


def test_a_burst_of_wrong_passwords_gets_only_max_failures_guesses(strict: Service) -> None:
    # Each from its own address: the name's counter alone has to hold.
    statuses = burst(strict, [("grace", "wrong-password-9", f"192.0.2.{n}") for n in range(20)])
    assert Counter(statuses) == {401: 3, 429: 17}


def test_the_right_password_in_a_burst_cannot_log_in_once_the_budget_is_spent(
    strict: Service,
) -> None:
    for _ in range(2):
        assert attempt(strict, "frank", "wrong-password-9", "198.51.100.20")[0] == 401
    # One guess is left: exactly one request of the burst reaches the password check.
    attempts = [("frank", "wrong-password-9", f"198.51.100.{n}") for n in range(21, 50)]
    attempts.insert(15, ("frank", USERS["frank"][0], "198.51.100.50"))
    statuses = Counter(burst(strict, attempts))
    if statuses[200]:
        # The right password happened to be the last guess; its success reset the counter.
        assert statuses[200] == 1 and statuses[401] <= 3
    else:
        assert statuses == {401: 1, 429: 29}
        assert attempt(strict, "frank", USERS["frank"][0], "198.51.100.51")[0] == 429


def test_a_burst_across_names_from_one_address_gets_four_times_the_limit(
    strict: Service,
) -> None:
    client = "203.0.113.40"
    statuses = burst(strict, [(f"spray-{n}", "wrong-password-9", client) for n in range(30)])
    assert Counter(statuses) == {401: 12, 429: 18}


def test_successes_and_locked_names_do_not_spend_the_address_budget(strict: Service) -> None:
    client = "203.0.113.50"
    for _ in range(3):
        attempt(strict, "heidi", "wrong-password-9", "203.0.113.51")
    assert [attempt(strict, "heidi", "wrong-password-9", client)[0] for _ in range(5)] == [429] * 5
    for _ in range(13):
        assert attempt(strict, "erin", USERS["erin"][0], client)[0] == 200
    statuses = [attempt(strict, f"other-{n}", "wrong-password-9", client)[0] for n in range(12)]
    assert statuses == [401] * 12
    assert attempt(strict, "other-12", "wrong-password-9", client)[0] == 429


async def test_a_given_back_attempt_never_carries_into_the_next_window(tmp_path: Path) -> None:
    now = [1000.0]
    async with SQLiteStore(tmp_path / "store.db") as store:
        throttle = LoginThrottle(store, max_failures=1, lockout=60, clock=lambda: now[0])
        first = await throttle.attempt("alice", "203.0.113.9")
        assert first.retry_after is None
        await throttle.not_checked(first)  # given back: the name has its one guess again
        assert (await throttle.attempt("alice", "203.0.113.9")).retry_after is None
        assert (await throttle.attempt("alice", "203.0.113.9")).retry_after == 60
        late = await throttle.attempt("bob", "203.0.113.9")
        now[0] += 61  # both windows pass before the attempt is given back
        await throttle.not_checked(late)
        assert (await throttle.attempt("bob", "203.0.113.9")).retry_after is None
        assert (await throttle.attempt("bob", "203.0.113.9")).retry_after == 60
