"""Where the gateway's workers spend their time: py-spy during a c=50 run, summarised.

py-spy samples the uvicorn supervisor and its workers (``--subprocesses``) without pausing them
(``--nonblocking``) and writes collapsed stacks (``--format raw``), a file speedscope opens as
is. The summary counts, per function, the samples where it was on top of the stack (own time)
and, for the gateway's own functions, the samples where it was anywhere on it (inclusive).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LINE = re.compile(r"^(.*) (\d+)$")
_LINE_NUMBER = re.compile(r":\d+\)$")
_PREFIXES = (re.compile(r"^.*/site-packages/"), re.compile(r"^.*/lib/python3\.\d+/"))


def find_py_spy() -> str | None:
    """py-spy beside this Python (a venv's bin) or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record_argv(py_spy: str, pid: int, seconds: float, output: Path, rate: int = 199) -> list[str]:
    """The py-spy command sampling ``pid`` and its children for ``seconds``."""
    return [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        "--format",
        "raw",
        "--rate",
        str(rate),
        "--duration",
        str(max(1, round(seconds))),
        "--output",
        str(output),
    ]


def _frame(raw: str, repo: Path) -> str:
    """``function (file)``: line numbers dropped, library paths shortened."""
    text = _LINE_NUMBER.sub(")", raw.strip())
    name, _, location = text.partition(" (")
    location = location.removeprefix(str(repo) + "/")
    for prefix in _PREFIXES:
        location = prefix.sub("", location)
    return f"{name} ({location}" if location else name


def _package(frame: str) -> str:
    """The top-level package of a frame's file; the loop's own C code is uvloop's."""
    if frame.startswith("Runner.run (asyncio/"):
        return "uvloop (C, under Runner.run)"
    location = frame.partition(" (")[2].removesuffix(")")
    return location.split("/", 1)[0]


@dataclass
class Profile:
    """Sample counts by function: own (top of stack) and inclusive (gateway functions)."""

    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)

    def top_own(self, count: int = 15) -> list[tuple[str, float]]:
        return [(name, n / self.samples) for name, n in self.own.most_common(count)]

    def top_inclusive(self, count: int = 12) -> list[tuple[str, float]]:
        return [(name, n / self.samples) for name, n in self.inclusive.most_common(count)]

    def top_packages(self, count: int = 10) -> list[tuple[str, float]]:
        return [(name, n / self.samples) for name, n in self.packages.most_common(count)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "own_by_package": [
                {"package": n, "share": round(s, 4)} for n, s in self.top_packages(15)
            ],
            "top_own": [{"function": n, "share": round(s, 4)} for n, s in self.top_own(25)],
            "top_inclusive_gateway": [
                {"function": n, "share": round(s, 4)} for n, s in self.top_inclusive(25)
            ],
        }


def summarise(raw: Path, repo: Path) -> Profile:
    """Read py-spy's collapsed stacks (``frame;frame;... count`` per line)."""
    profile = Profile()
    for line in raw.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        count = int(match.group(2))
        frames = [
            _frame(f, repo)
            for f in match.group(1).split(";")
            if f and not f.startswith(("process ", "thread ("))
        ]
        if not frames:
            continue
        profile.samples += count
        profile.own[frames[-1]] += count
        profile.packages[_package(frames[-1])] += count
        for name in set(frames):
            if "(gateway/" in name:
                profile.inclusive[name] += count
    return profile
