"""Gateway configurations for tests, written from Python values rather than YAML in f-strings.

``config_yaml`` dumps with ``yaml.safe_dump``, so a value is quoted when YAML would read it as
something else, and indentation cannot go wrong. Tests about the file itself (line numbers in
errors, duplicate keys, broken syntax) still write their text by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from gateway.config import Config, parse_config

SOURCE = Path("/x/routes.yaml")


def route(name: str, path: str, upstream: str | Sequence[str], **settings: Any) -> dict[str, Any]:
    """One entry of ``routes``; ``settings`` are its other keys (``auth``, ``scopes``, ...)."""
    upstreams = upstream if isinstance(upstream, str) else list(upstream)
    return {"name": name, "path": path, "upstream": upstreams, **settings}


def config_yaml(*, routes: Sequence[Mapping[str, Any]] = (), **sections: Any) -> str:
    """A ``routes.yaml`` text: the top-level ``sections`` in the order given, then ``routes``."""
    return yaml.safe_dump(
        {**sections, "routes": [dict(r) for r in routes]}, sort_keys=False, allow_unicode=True
    )


def build_config(*, routes: Sequence[Mapping[str, Any]] = (), **sections: Any) -> Config:
    """The ``Config`` the gateway would build from ``config_yaml(...)``, with no environment."""
    return parse_config(config_yaml(routes=routes, **sections), SOURCE, {})
