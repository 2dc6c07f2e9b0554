"""Shared fixtures: free ports, a real upstream server, the real gateway in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.configs import config_yaml
from tests.upstream import ServerThread, Upstream
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent

# Property-based tests (tests/**/test_*_properties.py): by default a bounded, repeatable run
# (the same examples on every machine, no example database written), so the suite stays fast
# and a failure in CI is a failure locally. HYPOTHESIS_PROFILE=thorough explores more, with a
# fresh seed each run and the example database kept in .hypothesis/ to replay what it found.
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_pids(pid: int) -> list[int]:
    """The worker processes the supervisor ``pid`` started (not multiprocessing's helper)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            spawned = b"spawn_main" in (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if spawned and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until ``url`` answers at all (any status)."""
    import httpx

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

    try:
        eventually(answers, timeout=timeout)
    except AssertionError:
        raise RuntimeError(f"{url} never answered") from None


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, int]]:
    """A real upstream HTTP server on a free port: ``(app, port)``."""
    app = Upstream()
    port = free_port()
    with ServerThread(app, port):
        yield app, port


class GatewayProcess:
    """``gateway serve`` in a subprocess; stdout (access log) and stderr captured to files."""

    def __init__(
        self,
        config_path: Path,
        port: int,
        workers: int = 1,
        env: dict[str, str] | None = None,
        admin_port: int | None = None,
        extra_args: tuple[str, ...] = (),
        stdout_fd: int | None = None,
    ) -> None:
        self.config_path = config_path
        self.port = port
        self.admin_port = admin_port
        self.url = f"http://127.0.0.1:{port}"
        self.admin_url = f"http://127.0.0.1:{admin_port}"
        self.stdout_path = config_path.parent / f"gateway-{port}.out"
        self.stderr_path = config_path.parent / f"gateway-{port}.err"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--config",
                str(config_path),
                "--port",
                str(port),
                "--workers",
                str(workers),
                *extra_args,
            ],
            stdout=self._out if stdout_fd is None else stdout_fd,
            stderr=self._err,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        try:
            # The supervisor binds the ports before its workers run: wait for an answer.
            wait_for_http(f"http://127.0.0.1:{admin_port or port}/healthz", self.proc)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"gateway did not start:\n{self.output()}") from None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        """Everything the gateway printed, stdout then stderr."""
        return self.stdout() + self.stderr()

    def rss_kib(self) -> int:
        """Resident memory of the gateway process (one worker: the serving process itself)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        self._err.close()
        return self.proc.returncode


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start the real gateway on a configuration (top-level sections, as ``config_yaml``
    takes them); stopped after the test.

    The admin listener gets a free port unless the configuration names one (``server.admin``)."""
    started: list[GatewayProcess] = []

    def start(
        config: Mapping[str, Any],
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        name: str = "routes.yaml",
        extra_args: tuple[str, ...] = (),
        stdout_fd: int | None = None,
    ) -> GatewayProcess:
        path = tmp_path / name
        server = {"admin": {"port": free_port()}, **config.get("server", {})}
        path.write_text(config_yaml(**{**config, "server": server}))
        gateway = GatewayProcess(
            path,
            free_port(),
            workers,
            env,
            server["admin"]["port"],
            extra_args,
            stdout_fd=stdout_fd,
        )
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
