"""What a reload watches: the configuration file and the files it points at.

A fingerprint is the size and modification time of each watched file (and the listing of the
keys folder); comparing two fingerprints is how a worker notices an edit without inotify.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from gateway.config import Config

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint_of_file(path: Path) -> tuple[str, int, int]:
    """One file's entry in a fingerprint."""
    return _stat(Path(os.path.abspath(path)))


def _stat(path: Path) -> tuple[str, int, int]:
    try:
        info = os.stat(path)
    except OSError:
        return (str(path), -1, -1)
    return (str(path), info.st_mtime_ns, info.st_size)


def fingerprint(config: Config) -> Fingerprint:
    """The state of every file a reload depends on."""
    paths = [config.source]
    if config.users.file is not None:
        paths.append(config.users.file)
    paths.extend(t.jwks_file for t in config.trusted_issuers if t.jwks_file is not None)
    entries = [_stat(p) for p in paths]
    keys = config.tokens.keys
    with contextlib.suppress(OSError):
        entries.extend(_stat(p) for p in sorted(keys.glob("*.pem")))
    entries.append(_stat(keys))
    return tuple(entries)
