"""Live reload (docs/behaviour.md#reload-and-signals): edits apply within 2 s in every worker, broken files are refused."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess
from tests.upstream import Upstream
from tests.waiting import eventually

WORKERS = 2


def _config(upstream_port: int) -> dict[str, Any]:
    return {
        "routes": [route("first", "/first", f"http://127.0.0.1:{upstream_port}", auth="public")]
    }


def _second_route(upstream_port: int, name: str = "second") -> dict[str, Any]:
    return route(name, f"/{name}", f"http://127.0.0.1:{upstream_port}", auth="public")


def _adding(text: str, new_route: dict[str, Any]) -> str:
    """The configuration ``text`` with ``new_route`` added; everything else (the admin port
    ``start_gateway`` chose, say) kept."""
    settings = yaml.safe_load(text)
    return config_yaml(**{**settings, "routes": [*settings["routes"], new_route]})


def _all_answer(url: str, expected: int, attempts: int = 20) -> bool:
    """Whether ``attempts`` fresh connections (spread over the workers) all get ``expected``."""
    for _ in range(attempts):
        with httpx.Client() as client:  # a new connection each time: any worker may take it
            if client.get(url).status_code != expected:
                return False
    return True


def _served(gateway: GatewayProcess, path: str, attempts: int = 20) -> bool:
    """``_all_answer`` with 200 on ``path``, failing with what the gateway printed."""
    assert _all_answer(f"{gateway.url}{path}", 200, attempts), gateway.stderr()
    return True


def _refused(gateway: GatewayProcess) -> bool:
    """Whether the gateway said it refused a reload, failing with what it printed."""
    assert "reload refused" in gateway.stderr(), gateway.stderr()
    return True


def test_an_edited_file_is_served_within_3_seconds_by_every_worker(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port), workers=WORKERS)
    assert httpx.get(f"{gateway.url}/second").status_code == 404
    gateway.config_path.write_text(_adding(gateway.config_path.read_text(), _second_route(port)))
    eventually(lambda: _served(gateway, "/second"), timeout=3.0, interval=0.1)
    assert _all_answer(f"{gateway.url}/first", 200)


def test_a_broken_edit_keeps_the_old_routes_and_logs_the_error(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port), workers=WORKERS)
    gateway.config_path.write_text(gateway.config_path.read_text() + "  - name: [broken\n")
    eventually(lambda: _refused(gateway), timeout=3.0, interval=0.1)
    assert _all_answer(f"{gateway.url}/first", 200)
    assert f"{gateway.config_path}:" in gateway.stderr()


def test_a_refused_edit_shows_as_degraded_on_readyz_until_a_good_edit(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port))
    good = gateway.config_path.read_text()
    gateway.config_path.write_text(good + "  - name: [broken\n")
    eventually(lambda: _refused(gateway), timeout=3.0, interval=0.1)
    ready = httpx.get(f"{gateway.admin_url}/readyz")
    assert ready.status_code == 200  # the last good configuration serves
    assert ready.json()["status"] == "degraded"
    assert str(gateway.config_path) in ready.json()["reasons"][0]
    gateway.config_path.write_text(_adding(good, _second_route(port)))
    eventually(lambda: httpx.get(f"{gateway.admin_url}/readyz").json()["status"] == "ready")


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda text: text + "  - name: [broken\n", id="YAML syntax"),
        pytest.param(
            lambda text: text.replace("http://127.0.0.1:", "http://127.0.0.1:9"), id="invalid port"
        ),
        pytest.param(lambda text: text.replace("routes:", "routes: [\n"), id="unclosed list"),
    ],
)
def test_after_a_refused_edit_the_next_good_edit_still_applies(
    upstream: tuple[Upstream, int],
    start_gateway: Callable[..., GatewayProcess],
    breakage: Callable[[str], str],
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port))
    good = gateway.config_path.read_text()
    gateway.config_path.write_text(breakage(good))
    eventually(lambda: _refused(gateway), timeout=3.0, interval=0.1)
    gateway.config_path.write_text(_adding(good, _second_route(port)))
    eventually(lambda: _served(gateway, "/second", attempts=3), timeout=3.0, interval=0.1)


def test_sighup_reloads_at_once(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port), workers=WORKERS)
    path = gateway.config_path
    before = path.stat()
    # Same size and modification time: only the signal can reveal the change.
    text = path.read_text().replace("name: first", "name: frist").replace("/first", "/frist")
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    time.sleep(1.5)  # the file watcher polls meanwhile, and must see no change
    assert httpx.get(f"{gateway.url}/frist").status_code == 404
    os.kill(gateway.proc.pid, signal.SIGHUP)
    eventually(lambda: _served(gateway, "/frist"), timeout=1.0, interval=0.1)


def test_a_new_key_in_the_keys_folder_is_accepted_without_restart(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess], tmp_path
) -> None:
    from tests.tokens import ISSUER, SigningKey

    _, port = upstream
    gateway = start_gateway(
        {
            "tokens": {"issuer": ISSUER, "keys": "./keys"},
            "routes": [route("p", "/p", f"http://127.0.0.1:{port}")],
        }
    )
    key = SigningKey(tmp_path / "keys", "ES256")
    eventually(
        lambda: (
            httpx.get(
                f"{gateway.url}/p", headers={"Authorization": f"Bearer {key.token()}"}
            ).status_code
            == 200
        ),
        timeout=3.0,
        interval=0.1,
    )


def test_reload_follows_a_config_mounted_through_a_swapped_symlink(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess], tmp_path
) -> None:
    """Kubernetes mounts a ConfigMap as ``routes.yaml -> ..data/routes.yaml`` and, on update,
    points ``..data`` at a new folder and deletes the old one."""
    _, port = upstream
    mount = tmp_path / "mount"
    first = mount / "..2026_01"
    first.mkdir(parents=True)
    (first / "routes.yaml").write_text(config_yaml(**_config(port)))
    (mount / "..data").symlink_to("..2026_01")
    (mount / "routes.yaml").symlink_to("..data/routes.yaml")
    gateway = start_gateway(_config(port))  # admin port etc. written beside, then replaced
    gateway.stop()
    text = gateway.config_path.read_text()
    (first / "routes.yaml").write_text(text)
    from tests.conftest import free_port

    gateway = GatewayProcess(mount / "routes.yaml", free_port(), admin_port=gateway.admin_port)
    try:
        second = mount / "..2026_02"
        second.mkdir()
        (second / "routes.yaml").write_text(_adding(text, _second_route(port)))
        (mount / "..data_tmp").symlink_to("..2026_02")
        os.replace(mount / "..data_tmp", mount / "..data")
        for name in os.listdir(first):
            os.unlink(first / name)
        first.rmdir()
        eventually(lambda: _served(gateway, "/second", attempts=3), timeout=3.0, interval=0.1)
    finally:
        gateway.stop()


def test_a_user_added_while_running_can_log_in_within_2_seconds(
    start_gateway: Callable[..., GatewayProcess],
) -> None:
    import subprocess
    import sys

    # Attempts before the reload count as failures: keep them far from the lockout.
    gateway = start_gateway({"users": {"max_failures": 1000}})
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "users",
            "add",
            "newcomer",
            "--password-stdin",
            "--config",
            str(gateway.config_path),
        ],
        input="a-long-enough-password\n",
        text=True,
        check=True,
        capture_output=True,
    )

    def logs_in() -> bool:
        response = httpx.post(
            f"{gateway.url}/auth/login",
            json={"username": "newcomer", "password": "a-long-enough-password"},
        )
        return response.status_code == 200

    eventually(logs_in, timeout=3.0, interval=0.1)
