"""Starting the processes a run needs, and always stopping them, whatever happens.

Every child runs in its own session (so uvicorn's and nginx's workers share its process group)
and is stopped by group: SIGTERM, then SIGKILL after a grace period. Only processes this module
started are ever signalled, by their id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"
STOP_GRACE_SECONDS = 10.0

# urllib would honour http_proxy from the environment; the benchmark talks to loopback only.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StartError(Exception):
    """A process exited or did not become ready in time; the message says which and why."""


@dataclass
class Child:
    """One started process and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 15) -> str:
        """The last lines of its stderr, for an error message."""
        try:
            text = self.stderr.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Processes:
    """The children of one run; a context manager that stops them all on exit."""

    logs: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        """Start ``argv`` in a new session, output to ``<logs>/<name>.out`` and ``.err``."""
        stdout = self.logs / f"{name}.out"
        stderr = self.logs / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=None if env is None else {**os.environ, **env},
                cwd=cwd,
                start_new_session=True,
            )
        child = Child(name, process, stdout, stderr)
        self.children.append(child)
        return child

    def stop(self, child: Child) -> None:
        """SIGTERM the child's process group, SIGKILL it if it lingers."""
        process = child.process
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(STOP_GRACE_SECONDS)
        # Workers whose parent is gone but which still hold the group: end them too.
        _signal_group(process.pid, signal.SIGKILL)
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        """Stop every child still running, newest first."""
        for child in reversed(list(self.children)):
            with contextlib.suppress(Exception):
                self.stop(child)

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(child: Child, port: int, timeout: float = 20.0) -> None:
    """Return once ``port`` accepts connections; raise ``StartError`` if the child dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise StartError(
                f"{child.name} exited with {child.process.returncode}:\n{child.tail()}"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise StartError(f"{child.name} did not listen on port {port} within {timeout:.0f} s")


def http_status(url: str, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> int:
    """The status of a GET to ``url`` (0 when no answer came)."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with _DIRECT.open(request, timeout=timeout) as response:
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code
    except OSError:
        return 0


def wait_for_status(
    child: Child, url: str, headers: Mapping[str, str], want: int = 200, timeout: float = 30.0
) -> None:
    """Return once ``url`` answers ``want``; raise ``StartError`` with the last status."""
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise StartError(
                f"{child.name} exited with {child.process.returncode}:\n{child.tail()}"
            )
        status = http_status(url, headers)
        if status == want:
            return
        time.sleep(0.1)
    raise StartError(f"{url} answered {status}, not {want}, for {timeout:.0f} s:\n{child.tail()}")


def rss_bytes(pid: int) -> int | None:
    """The resident set size of ``pid`` (VmRSS), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Samples one process's RSS every ``interval`` seconds on a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline = rss_bytes(pid) or 0
        self.peak = self.baseline
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = rss_bytes(self.pid)
            if rss is not None:
                self.peak = max(self.peak, rss)
                self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        """Peak minus the RSS measured when the sampler was made."""
        return self.peak - self.baseline
