"""A SQLite store on a full file system: token endpoints answer 503 and /readyz says so.

The store lives on a small tmpfs the test mounts (root only); filling it is a real ENOSPC, not
an imitation. Freeing the space brings everything back without a restart.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.configs import route
from tests.conftest import GatewayProcess
from tests.tokenservice.conftest import CHEAP
from tests.upstream import Upstream
from tests.waiting import eventually

PASSWORD = "full-disk-passphrase"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path) -> Path:
    """Fill the file system to the last byte; the filler, to delete."""
    filler = disk / "filler"
    try:
        with filler.open("wb") as out:
            while True:
                out.write(b"\0" * 4096)
                out.flush()
    except OSError:
        pass  # ENOSPC: full
    return filler


def test_a_full_disk_makes_the_token_endpoints_503_and_the_replica_not_ready_until_freed(
    small_disk: Path,
    upstream: tuple[Upstream, int],
    start_gateway: Callable[..., GatewayProcess],
    tmp_path: Path,
) -> None:
    _, port = upstream
    users = {"users": {"dora": {"password_hash": CHEAP.hash(PASSWORD), "scopes": []}}}
    (tmp_path / "users.yaml").write_text(yaml.safe_dump(users))
    gateway = start_gateway(
        {
            "store": f"sqlite:///{small_disk}/gateway.db",
            "users": {"file": "./users.yaml"},
            "routes": [route("app", "/app", f"http://127.0.0.1:{port}", auth="public")],
        }
    )
    credentials = {"username": "dora", "password": PASSWORD}
    assert httpx.post(f"{gateway.url}/auth/login", json=credentials).status_code == 200
    filler = fill(small_disk)

    def refused() -> bool:
        answer = httpx.post(f"{gateway.url}/auth/login", json=credentials)
        return answer.status_code == 503 and answer.json()["error"] == "store_unavailable"

    eventually(refused, timeout=10)
    ready = httpx.get(f"{gateway.admin_url}/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert httpx.get(f"{gateway.url}/app/x").status_code == 200  # proxying goes on

    filler.unlink(missing_ok=True)
    eventually(lambda: httpx.get(f"{gateway.admin_url}/readyz").status_code == 200, timeout=10)
    assert httpx.post(f"{gateway.url}/auth/login", json=credentials).status_code == 200
    assert PASSWORD not in gateway.output()
