"""The configuration: ``routes.yaml`` read, validated and built once into frozen dataclasses.

``load_config`` collects every problem, each labelled ``PATH:LINE: message``, before failing.

model.py  the dataclasses (``Config`` and its parts)
build.py  validation: the parsed document to a ``Config``, every problem with its line
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gateway.config.build import Builder
from gateway.config.model import (
    SIGNING_ALGORITHMS,
    VERIFY_ALGORITHMS,
    AccessCookieConfig,
    AdminListener,
    AuthMode,
    Config,
    ConfigError,
    CookieConfig,
    CorsConfig,
    HeaderRules,
    IdentityAssertionConfig,
    IpNetwork,
    LoginConfig,
    OidcProviderConfig,
    RateLimit,
    Route,
    ServerConfig,
    TokensConfig,
    TrustedIssuer,
    UsersConfig,
    config_warnings,
    is_reserved,
    missing_inputs,
    origin_of,
)
from gateway.config.yaml_source import parse_yaml

__all__ = [
    "SIGNING_ALGORITHMS",
    "VERIFY_ALGORITHMS",
    "AccessCookieConfig",
    "AdminListener",
    "AuthMode",
    "Config",
    "ConfigError",
    "CookieConfig",
    "CorsConfig",
    "HeaderRules",
    "IdentityAssertionConfig",
    "IpNetwork",
    "LoginConfig",
    "OidcProviderConfig",
    "RateLimit",
    "Route",
    "ServerConfig",
    "TokensConfig",
    "TrustedIssuer",
    "UsersConfig",
    "config_warnings",
    "is_reserved",
    "load_config",
    "missing_inputs",
    "origin_of",
    "parse_config",
]


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and build the configuration at ``path``, or raise ``ConfigError``."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{source}: cannot read: {exc}"]) from None
    # Absolute, but symlinks kept: Kubernetes mounts a ConfigMap through a symlink to a
    # timestamped folder that it deletes on update; the link is what stays valid.
    return parse_config(text, Path(os.path.abspath(source)), environ)


def parse_config(text: str, source: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Validate and build a configuration from ``text``; ``source`` anchors relative paths."""
    doc = parse_yaml(text, os.environ if environ is None else environ)
    builder = Builder(doc, source)
    # Build whenever there is a document: duplicate keys or unset variables should not hide
    # the other problems of the file.
    config = builder.build() if doc.data is not None or not doc.problems else None
    if doc.problems or config is None:
        problems = sorted(set(doc.problems))
        raise ConfigError([f"{source}:{line}: {message}" for line, message in problems])
    return config
