"""Parsing of the human units used in ``routes.yaml``: durations, sizes and rates."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*$")
_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, None: 1}

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_RATE_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}


# Far beyond any sensible setting, and well inside what timers and dates can represent.
MAX_DURATION = 100 * 365 * 86400.0
MAX_SIZE = 1 << 50


class UnitError(ValueError):
    """A value that is not a valid duration, size or rate."""


def _bounded_duration(seconds: float, value: object) -> float:
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION:
        raise UnitError(f"{value!r} is not a duration between 0 and 100 years")
    return seconds


def parse_duration(value: object) -> float:
    """Seconds from ``500ms``, ``30s``, ``15m``, ``12h``, ``7d`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a duration (use e.g. 500ms, 30s, 15m, 12h, 7d)")
    if isinstance(value, int | float):
        return _bounded_duration(float(value), value)
    match = _DURATION.match(str(value))
    if match is None:
        raise UnitError(f"{value!r} is not a duration (use e.g. 500ms, 30s, 15m, 12h, 7d)")
    return _bounded_duration(float(match.group(1)) * _DURATION_UNITS[match.group(2)], value)


def parse_size(value: object) -> int:
    """Bytes from ``512``, ``64KiB``, ``10MiB`` or ``1GiB``."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a size (use e.g. 512, 64KiB, 10MiB, 1GiB)")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise UnitError(f"{value!r} is not a size (use e.g. 512, 64KiB, 10MiB, 1GiB)")
        size = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if not 0 <= size <= MAX_SIZE:
        raise UnitError(f"{value!r} is not a size between 0 and 1 PiB")
    return size


def parse_rate(value: object) -> tuple[int, float]:
    """``(count, window_seconds)`` from ``100/min``, ``5/s`` or ``1000/h``."""
    match = _RATE.match(str(value))
    # Checked by length first: int() refuses more than 4300 digits with a ValueError.
    if match is None or len(match.group(1)) > 10 or not 0 < int(match.group(1)) <= 10**9:
        raise UnitError(f"{str(value)[:40]!r} is not a rate (use e.g. 5/s, 100/min, 1000/h)")
    return int(match.group(1)), _RATE_UNITS[match.group(2)]
