"""Compiles the request path with mypyc in a regular install or wheel; never in an editable one.

The ``.py`` files are the source of truth. ``pip install -e .`` (what ``make`` does) builds no
extension, so an edited module is what runs, never a stale compiled copy of it. ``pip install .``,
``pip wheel .`` and the container image compile ``COMPILED`` (measured to pay: bench/README.md,
"Compiled modules"); without a C compiler, or with ``GATEWAY_PURE_PYTHON=1``, the same package
is installed as pure Python, and one line says so (``pip -v`` shows it; ``gateway serve`` says
which it runs).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from typing import Any

from setuptools import setup

COMPILED = [
    "gateway/http/cycle.py",
    "gateway/http/client.py",
    "gateway/http/client_io.py",
    "gateway/http/upgrade.py",
    "gateway/http/server.py",
    "gateway/http/target.py",
    "gateway/http/pool.py",
    "gateway/proxy/routing.py",
    "gateway/proxy/headers.py",
    "gateway/proxy/access.py",
    "gateway/proxy/paths.py",
    "gateway/proxy/stages.py",
    "gateway/proxy/front_door.py",
    "gateway/proxy/forward.py",
    "gateway/proxy/balancer.py",
    "gateway/auth/token_cache.py",
    "gateway/auth/verifier.py",
    "gateway/auth/extract.py",
    "gateway/observability.py",
]


def _editable() -> bool:
    return any(command in sys.argv for command in ("editable_wheel", "develop"))


def _compiler() -> str | None:
    configured = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(configured)


def _ext_modules() -> list[Any]:
    if _editable() or any(step in sys.argv for step in ("egg_info", "dist_info", "sdist")):
        return []
    if os.environ.get("GATEWAY_PURE_PYTHON") == "1":
        print("gateway: GATEWAY_PURE_PYTHON=1: installing pure Python", file=sys.stderr)
        return []
    if _compiler() is None:
        print("gateway: no C compiler found: installing pure Python (slower)", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("gateway: mypyc is not available: installing pure Python", file=sys.stderr)
        return []
    return list(mypycify(COMPILED, opt_level="3", group_name="gateway"))


setup(ext_modules=_ext_modules())
