"""The users file's last good state: a broken, missing or misnamed file never locks anyone out.

Every path that rebuilds the token service is tried with the file broken: its own change,
another file's change (a reload), and ``SIGHUP``; the users last loaded keep working, one line
names the file and the problem, ``/readyz`` says "degraded" with the reason, a counter on
``/metrics`` rises, and the next good file is taken up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT
from tests.tokenservice.conftest import CHEAP, USERS, Service, login
from tests.waiting import eventually

ALICE = USERS["alice"][0]


def readiness(service: Service) -> dict[str, object]:
    answer = httpx.get(f"{service.gateway.admin_url}/readyz")
    assert answer.status_code == 200  # degraded still serves
    body = answer.json()
    assert isinstance(body, dict)
    return body


def failures_counted(service: Service) -> float:
    metrics = httpx.get(f"{service.gateway.admin_url}/metrics").text
    for line in metrics.splitlines():
        if line.startswith('gateway_input_load_failures_total{input="users_file"}'):
            return float(line.split()[-1])
    return 0.0


def reloads(service: Service) -> int:
    """Reloads done or refused so far (a deleted users file is refused: see the last test)."""
    printed = service.gateway.stderr()
    return printed.count("configuration reloaded") + printed.count("reload refused")


def reload_by(service: Service, how: str) -> None:
    """Make the worker rebuild its configuration: SIGHUP, or a change to routes.yaml."""
    before = reloads(service)
    if how == "sighup":
        os.kill(service.gateway.proc.pid, signal.SIGHUP)
    else:
        service.config_path.write_text(service.config_path.read_text() + "\n# touched\n")
    eventually(lambda: reloads(service) > before)


@pytest.fixture
def service(start_service: Callable[..., Service]) -> Service:
    running = start_service()
    assert login(running.url, "alice", ALICE).status_code == 200
    return running


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda path: path.write_text("users: [unclosed\n"), id="invalid YAML"),
        pytest.param(lambda path: path.write_text("- just\n- a list\n"), id="not a mapping"),
        pytest.param(lambda path: path.unlink(), id="deleted"),
    ],
)
@pytest.mark.parametrize("rebuild", ["sighup", "other file"])
def test_a_broken_users_file_keeps_the_users_last_loaded_through_every_rebuild(
    service: Service, breakage: Callable[[Path], None], rebuild: str
) -> None:
    users_file = service.folder / "users.yaml"
    breakage(users_file)
    assert login(service.url, "alice", ALICE).status_code == 200  # its own change
    reload_by(service, rebuild)
    assert login(service.url, "alice", ALICE).status_code == 200
    reasons = readiness(service)
    assert reasons["status"] == "degraded"
    assert any(str(users_file) in reason for reason in reasons["reasons"])  # type: ignore[attr-defined]
    assert failures_counted(service) >= 1
    logged = [line for line in service.gateway.stderr().splitlines() if "keeping the" in line]
    assert len(logged) == 1 and str(users_file) in logged[0]
    assert ALICE not in service.gateway.output()


def test_the_next_good_users_file_is_taken_up(service: Service) -> None:
    users_file = service.folder / "users.yaml"
    good = users_file.read_text()
    users_file.write_text("users: [unclosed\n")
    assert login(service.url, "alice", ALICE).status_code == 200
    data = yaml.safe_load(good)
    data["users"]["zoe"] = {"password_hash": CHEAP.hash("zoe-new-passphrase"), "scopes": []}
    users_file.write_text(yaml.safe_dump(data))
    assert login(service.url, "zoe", "zoe-new-passphrase").status_code == 200
    assert readiness(service)["status"] == "ready"


def test_a_reload_naming_a_users_file_that_does_not_exist_is_refused(service: Service) -> None:
    text = service.config_path.read_text().replace("./users.yaml", "./no-such-users.yaml")
    service.config_path.write_text(text)
    eventually(lambda: "no-such-users.yaml does not exist" in service.gateway.stderr())
    assert "reload refused" in service.gateway.stderr()
    assert login(service.url, "alice", ALICE).status_code == 200


def test_check_refuses_a_users_file_that_does_not_exist(tmp_path: Path) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text("users: {file: ./missing.yaml}\nroutes: []\n")
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip() == f"{config}: users.file: {tmp_path / 'missing.yaml'} does not exist"
    )
