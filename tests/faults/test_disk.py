"""A SQLite store on a full or a read-only file system: 503, not ready, and back by itself.

The store lives on a small tmpfs the test mounts (root only); filling it is a real ENOSPC, not
an imitation. A read-only file system is a read-only bind mount of the store's folder (a mount
with a file open for writing cannot be remounted read-only, so the gateway starts on it, as on a
volume mounted read-only by mistake). Freeing the space, or remounting it writable, brings
everything back without a restart; the sessions of before refresh on, and the SQLite file is
intact.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.tokenservice.conftest import (
    USERS,
    Service,
    call,
    config_text,
    launch,
    login,
    refresh,
    refresh_cookie,
    start_session,
)
from tests.waiting import eventually


def _mount(*argv: str) -> None:
    done = subprocess.run(["mount", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here (root needed): {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk))
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


def _start(folder: Path, upstream_port: int, database: Path) -> Service:
    return launch(folder, config_text(upstream_port, store=f"sqlite:///{database}"))


def _refused(service: Service) -> bool:
    answer = login(service.url, "bob", USERS["bob"][0])
    return answer.status_code == 503 and answer.json()["error"] == "store_unavailable"


def _ready(service: Service) -> int:
    return httpx.get(f"{service.gateway.admin_url}/readyz").status_code


def _intact(database: Path) -> None:
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_full_disk_makes_the_token_endpoints_503_and_the_replica_not_ready_until_freed(
    small_disk: Path, upstream_port: int, tmp_path: Path
) -> None:
    database = small_disk / "gateway.db"
    service = _start(tmp_path / "gateway", upstream_port, database)
    try:
        session = start_session(service.url, "alice")
        filler = fill(small_disk)
        eventually(lambda: _refused(service), timeout=10)
        assert refresh(service.url, session.cookie).status_code == 503
        assert _ready(service) == 503
        assert call(service.url, session.access_token).status_code == 200  # proxying goes on

        filler.unlink(missing_ok=True)
        eventually(lambda: _ready(service) == 200, timeout=10)
        assert login(service.url, "bob", USERS["bob"][0]).status_code == 200
        again = refresh(service.url, session.cookie)  # the session of before the disk filled
        assert again.status_code == 200, again.text
        assert refresh(service.url, refresh_cookie(again)).status_code == 200
    finally:
        service.stop()
    _intact(database)


def test_a_read_only_file_system_makes_the_token_endpoints_503_until_writable(
    small_disk: Path, upstream_port: int, tmp_path: Path
) -> None:
    view = tmp_path / "view"
    view.mkdir()
    _mount("--bind", str(small_disk), str(view))
    try:
        database = view / "gateway.db"
        first = _start(tmp_path / "gateway", upstream_port, database)
        session = start_session(first.url, "alice")
        first.stop()
        _mount("-o", "remount,bind,ro", str(view))
        service = launch(tmp_path / "gateway", first.config_path.read_text())
        try:
            eventually(lambda: _refused(service), timeout=10)
            assert refresh(service.url, session.cookie).status_code == 503
            assert _ready(service) == 503
            assert call(service.url, session.access_token).status_code == 200

            _mount("-o", "remount,bind,rw", str(view))
            eventually(lambda: _ready(service) == 200, timeout=10)
            again = refresh(service.url, session.cookie)
            assert again.status_code == 200, again.text
            assert refresh(service.url, refresh_cookie(again)).status_code == 200
        finally:
            service.stop()
        _intact(database)
    finally:
        subprocess.run(["umount", "-l", str(view)], capture_output=True)
