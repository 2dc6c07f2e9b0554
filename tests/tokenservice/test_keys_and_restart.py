"""Signing-key rotation and restarts (`gateway keys generate`, docs/behaviour.md#command-line)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import jwt

from tests.conftest import ROOT
from tests.tokenservice.conftest import (
    CLIENT,
    Service,
    call,
    refresh,
    refresh_cookie,
    start_session,
)
from tests.waiting import eventually


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def published_kids(service: Service) -> list[str]:
    return [key["kid"] for key in CLIENT.get(f"{service.url}/.well-known/jwks.json").json()["keys"]]


def generate(service: Service) -> str:
    """Run `gateway keys generate` for ``service``; the new kid."""
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "keys",
            "generate",
            "--config",
            str(service.config_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=True,
    )
    return generated.stdout.split()[3]


def test_the_first_serve_creates_a_key_and_publishes_it(service: Service) -> None:
    files = sorted(p.stem for p in (service.folder / "keys").glob("*.pem"))
    assert published_kids(service) == files and len(files) == 1
    assert (service.folder / "keys").stat().st_mode & 0o077 == 0


def test_after_keys_generate_both_keys_are_published_old_tokens_pass_new_ones_use_the_new_key(
    start_service: Callable[..., Service],
) -> None:
    service = start_service()
    before = start_session(service.url, "alice")
    (old_kid,) = published_kids(service)
    new_kid = generate(service)
    service.restart()
    assert sorted(published_kids(service)) == sorted([old_kid, new_kid])
    assert kid_of(before.access_token) == old_kid
    assert call(service.url, before.access_token).status_code == 200
    after = start_session(service.url, "alice")
    assert kid_of(after.access_token) == new_kid
    assert call(service.url, after.access_token).status_code == 200


def test_a_key_generated_while_serving_signs_within_seconds_without_a_restart(
    start_service: Callable[..., Service],
) -> None:
    service = start_service()
    before = start_session(service.url, "alice")
    new_kid = generate(service)
    eventually(lambda: new_kid in published_kids(service), timeout=5, interval=0.1)
    assert len(published_kids(service)) == 2
    assert kid_of(start_session(service.url, "alice").access_token) == new_kid
    assert call(service.url, before.access_token).status_code == 200


def test_a_restart_keeps_every_session(service: Service) -> None:
    sessions = [start_session(service.url, name) for name in ("alice", "bob")]
    service.restart()
    for session in sessions:
        assert call(service.url, session.access_token).status_code == 200
        rotated = refresh(service.url, session.cookie)
        assert rotated.status_code == 200
        assert refresh_cookie(rotated) is not None
