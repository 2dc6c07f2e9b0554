"""Shared fixtures: free ports, a real upstream server, the real gateway in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.upstream import ServerThread, Upstream

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, int]]:
    """A real upstream HTTP server on a free port: ``(app, port)``."""
    app = Upstream()
    port = free_port()
    with ServerThread(app, port):
        yield app, port


class GatewayProcess:
    """``gateway serve`` in a subprocess, with its output captured to a file."""

    def __init__(
        self, config_path: Path, port: int, workers: int = 1, env: dict[str, str] | None = None
    ) -> None:
        self.config_path = config_path
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = config_path.parent / f"gateway-{port}.log"
        self._log = open(self.log_path, "wb")
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
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        try:
            wait_for_port(port, proc=self.proc)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"gateway did not start:\n{self.output()}") from None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        """Resident memory of the gateway process (one worker: the serving process itself)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start the real gateway on a YAML text (dedented); stopped after the test."""
    started: list[GatewayProcess] = []

    def start(
        config_text: str,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        name: str = "routes.yaml",
    ) -> GatewayProcess:
        path = tmp_path / name
        text = textwrap.dedent(config_text)
        if "admin:" not in text:
            text = (
                text.replace("server:\n", f"server:\n  admin: {{port: {free_port()}}}\n", 1)
                if "server:\n" in text
                else f"server:\n  admin: {{port: {free_port()}}}\n" + text
            )
        path.write_text(text)
        gateway = GatewayProcess(path, free_port(), workers, env)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
