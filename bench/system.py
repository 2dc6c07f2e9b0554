"""What the run needs from the system (wrk, nginx, haproxy) and what it records of the machine."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path
from typing import Any

REQUIRED_TOOLS = ("wrk", "nginx", "haproxy")
PACKAGES = ("uvicorn", "uvloop", "httptools", "aiohttp", "pyjwt", "cryptography", "starlette")
_INSTALL_TIMEOUT = 300.0


def find_tool(name: str) -> str | None:
    """The path of ``name`` on PATH or in the sbin folders (nginx lives in /usr/sbin)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def ensure_tools(install: bool) -> dict[str, str | None]:
    """Each required tool's path; installs missing ones from Debian's packages when allowed.

    One ``apt-get update`` then one ``apt-get install -y``; a failure is reported on stderr and
    the tool's value stays None, so the rows needing it are skipped, not the whole run.
    """
    found = {name: find_tool(name) for name in REQUIRED_TOOLS}
    missing = [name for name, path in found.items() if path is None]
    if not missing or not install:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(
            f"bench: cannot install {', '.join(missing)} (need root and apt-get)", file=sys.stderr
        )
        return found
    print(f"bench: installing {', '.join(missing)} with apt-get ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        try:
            subprocess.run(argv, env=env, check=True, timeout=_INSTALL_TIMEOUT, capture_output=True)
        except (subprocess.SubprocessError, OSError) as error:
            print(f"bench: {' '.join(argv[:2])} failed: {error}", file=sys.stderr)
            break
    return {name: find_tool(name) for name in REQUIRED_TOOLS}


def _first_line(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (subprocess.SubprocessError, OSError):
        return None
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: how busy the shared machine was."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _python_build() -> dict[str, bool]:
    """How this interpreter was compiled: PGO and LTO make it faster, a shared libpython slower."""
    args = str(sysconfig.get_config_var("CONFIG_ARGS") or "")
    return {
        "pgo": "--enable-optimizations" in args,
        "lto": "--with-lto" in args,
        "shared_libpython": "--enable-shared" in args,
    }


def _cryptography_openssl() -> str | None:
    try:
        from cryptography.hazmat.backends.openssl import backend
    except ImportError:
        return None
    text: str = backend.openssl_version_text()
    return text


def gateway_build(python: str) -> str:
    """``compiled`` or ``pure Python``: what the gateway's request path runs as under ``python``."""
    code = "import gateway.http.server as m; print(m.__file__)"
    try:
        done = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=60, cwd="/"
        )
    except (subprocess.SubprocessError, OSError):
        return "unknown"
    return "compiled" if done.stdout.strip().endswith(".so") else "pure Python"


def describe_machine(repo: Path, tools: dict[str, str | None]) -> dict[str, Any]:
    """CPU, cores, memory, kernel, Python and package versions, tools and the git commit."""
    nginx, wrk, haproxy = tools.get("nginx"), tools.get("wrk"), tools.get("haproxy")
    status = _git(repo, "status", "--porcelain")
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_build": _python_build(),
        "cryptography_openssl": _cryptography_openssl(),
        "packages": {name: _version(name) for name in PACKAGES},
        "nginx": _first_line([nginx, "-v"]) if nginx else None,
        "wrk": _first_line([wrk, "--version"]) if wrk else None,
        "haproxy": _first_line([haproxy, "-v"]) if haproxy else None,
        "git_commit": _git(repo, "rev-parse", "HEAD"),
        "git_dirty_files": None if status is None else len(status.splitlines()),
        "loadavg_before": loadavg(),
    }
