"""`users.verify_url`: an existing accounts service checks the credentials (docs/configuration.md#users)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from tests.conftest import free_port
from tests.tokenservice.conftest import SECRETS, Service, config_text, launch, login
from tests.upstream import ServerThread

REMOTE_PASSWORD = "remote-pass-word-1"
SECRETS.add(REMOTE_PASSWORD)


class Accounts:
    """A tiny accounts service: alice is valid, "broken" makes it fail, anyone else is not."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        sent = json.loads(body)
        self.received.append(sent)
        if sent == {"username": "alice", "password": REMOTE_PASSWORD}:
            status, answer = (
                200,
                {"sub": "user-42", "scope": ["orders:read"], "tenant": "acme", "exp": 1},
            )
        elif sent["username"] == "broken":
            status, answer = 500, {"error": "database down"}
        else:
            status, answer = 401, {"error": "no"}
        payload = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[Accounts, ServerThread]]:
    app = Accounts()
    server = ServerThread(app, free_port())
    with server:
        yield app, server


@pytest.fixture(scope="module")
def delegating(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_port: int,
    accounts: tuple[Accounts, ServerThread],
) -> Iterator[Service]:
    url = f"http://127.0.0.1:{accounts[1].port}/verify"
    running = launch(
        tmp_path_factory.mktemp("delegating"),
        config_text(upstream_port, users={"verify_url": url}),
    )
    yield running
    running.stop()


def test_a_valid_answer_logs_the_user_in_with_its_sub_scope_and_claims(
    delegating: Service, accounts: tuple[Accounts, ServerThread]
) -> None:
    answer = login(delegating.url, "alice", REMOTE_PASSWORD)
    assert answer.status_code == 200
    assert accounts[0].received[-1] == {"username": "alice", "password": REMOTE_PASSWORD}
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "user-42" and claims["scope"] == "orders:read"
    assert claims["tenant"] == "acme"
    assert claims["exp"] - claims["iat"] == 300  # the service cannot set registered claims


def test_a_refusal_is_invalid_credentials(delegating: Service) -> None:
    answer = login(delegating.url, "alice", "not-the-remote-one")
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_credentials"


def test_a_failing_service_is_503_not_a_failed_login(delegating: Service) -> None:
    answer = login(delegating.url, "broken", "whatever-password")
    assert answer.status_code == 503
    assert answer.json()["error"] == "store_unavailable"


def test_an_outage_of_the_service_never_locks_the_name(delegating: Service) -> None:
    # More than max_failures (5) logins that the service could not check: none is counted.
    statuses = [login(delegating.url, "broken", "whatever-password").status_code for _ in range(8)]
    assert statuses == [503] * 8


def test_an_unreachable_service_is_503(
    delegating: Service, accounts: tuple[Accounts, ServerThread]
) -> None:
    accounts[1].__exit__()
    answer = login(delegating.url, "alice", REMOTE_PASSWORD)
    assert answer.status_code == 503
    assert answer.json()["error"] == "store_unavailable"
