"""Parsing of the human units used in ``routes.yaml``: durations, sizes and rates."""

from __future__ import annotations

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


class UnitError(ValueError):
    """A value that is not a valid duration, size or rate."""


def parse_duration(value: object) -> float:
    """Seconds from ``500ms``, ``30s``, ``15m``, ``12h``, ``7d`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a duration (use e.g. 500ms, 30s, 15m, 12h, 7d)")
    if isinstance(value, int | float):
        if value < 0:
            raise UnitError(f"{value!r} is not a duration: it is negative")
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise UnitError(f"{value!r} is not a duration (use e.g. 500ms, 30s, 15m, 12h, 7d)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(value: object) -> int:
    """Bytes from ``512``, ``64KiB``, ``10MiB`` or ``1GiB``."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a size (use e.g. 512, 64KiB, 10MiB, 1GiB)")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"{value!r} is not a size: it is negative")
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise UnitError(f"{value!r} is not a size (use e.g. 512, 64KiB, 10MiB, 1GiB)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def parse_rate(value: object) -> tuple[int, float]:
    """``(count, window_seconds)`` from ``100/min``, ``5/s`` or ``1000/h``."""
    match = _RATE.match(str(value))
    if match is None or int(match.group(1)) == 0:
        raise UnitError(f"{value!r} is not a rate (use e.g. 5/s, 100/min, 1000/h)")
    return int(match.group(1)), _RATE_UNITS[match.group(2)]
