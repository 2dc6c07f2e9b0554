"""A gateway whose store is down: it starts, proxies, and answers 503 on the token endpoints."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, free_port
from tests.tokenservice.conftest import (
    SECRETS,
    USERS,
    Service,
    call,
    config_text,
    cookies_set,
    launch,
    login,
    logout,
    refresh,
)

WELL_FORMED = "B" * 43  # a refresh token's shape, so the store is really asked


@pytest.fixture(scope="module")
def stranded(tmp_path_factory: pytest.TempPathFactory, upstream_port: int) -> Iterator[Service]:
    """A gateway configured with a Redis store that nothing listens for."""
    store = f"redis://127.0.0.1:{free_port()}/0"
    running = launch(tmp_path_factory.mktemp("stranded"), config_text(upstream_port, store=store))
    yield running
    running.stop()


def test_login_answers_503_store_unavailable(stranded: Service) -> None:
    answer = login(stranded.url, "alice", USERS["alice"][0])
    assert answer.status_code == 503
    assert answer.json()["error"] == "store_unavailable"


def test_refresh_answers_503_store_unavailable(stranded: Service) -> None:
    answer = refresh(stranded.url, WELL_FORMED)
    assert answer.status_code == 503
    assert answer.json()["error"] == "store_unavailable"


def test_logout_answers_503_but_still_clears_the_cookie(stranded: Service) -> None:
    answer = logout(stranded.url, WELL_FORMED)
    assert answer.status_code == 503
    assert cookies_set(answer)["gw_refresh"]["max-age"] == "0"


def test_valid_access_tokens_are_still_proxied(stranded: Service) -> None:
    minted = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "token",
            "mint",
            "--sub",
            "alice",
            "--config",
            str(stranded.config_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=True,
    )
    token = minted.stdout.strip()
    SECRETS.add(token)
    assert call(stranded.url, token).status_code == 200


def test_the_outage_is_one_log_line_without_a_traceback(stranded: Service) -> None:
    time.sleep(1.2)  # a few more polls fail meanwhile
    errors = stranded.gateway.stderr_path.read_text()
    assert errors.count("revocation updates paused") == 1
    assert "Traceback" not in errors
