"""Failed-login limits per username and per client address (SPEC §3 `users`, §4)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tokenservice.conftest import USERS, Service, config_text, launch, login

# Each test logs in from its own client address (X-Forwarded-For from a trusted proxy), so the
# per-address counters of one test never reach another's.
LIMITS = "{file: ./users.yaml, max_failures: 3, lockout: 15m}"


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, upstream_port: int) -> Iterator[Service]:
    """A gateway that locks a name after 3 failures (an address after 12) for 15 minutes."""
    running = launch(
        tmp_path_factory.mktemp("strict"),
        config_text(upstream_port, users=LIMITS, trusted_proxies="[127.0.0.1/32]"),
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
