"""Reading a parsed YAML document: typed values, unknown keys, and problems with their lines."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gateway.config.units import UnitError
from gateway.config.yaml_source import Document, Path_

T = TypeVar("T")
TOKEN_CHARS = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
NO_STRINGS: tuple[str, ...] = ()


class Reader:
    """Typed access to the document that records, rather than raises, every problem."""

    """Turns the parsed document into a ``Config``, recording every problem with its line."""

    def __init__(self, doc: Document, source: Path) -> None:
        self.doc = doc
        self.source = source
        self.base = source.parent

    # -- primitives ---------------------------------------------------------------------------

    def error(self, path: Path_, message: str) -> None:
        self.doc.problems.append((self.doc.line(path), message))

    def section(self, value: Any, path: Path_, keys: frozenset[str]) -> dict[str, Any]:
        label = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        label = label or "the file"
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"{label} must be a mapping")
            return {}
        for key in value:
            if key not in keys:
                known = ", ".join(sorted(keys))
                self.error((*path, key), f"unknown key {key!r} in {label} (known: {known})")
        return value

    def get(
        self,
        mapping: dict[str, Any],
        path: Path_,
        key: str,
        convert: Callable[[Any], T],
        default: T,
    ) -> T:
        if key not in mapping or mapping[key] is None:
            return default
        try:
            return convert(mapping[key])
        except (UnitError, ValueError, TypeError) as exc:
            self.error((*path, key), f"{key}: {exc}")
            return default

    # -- converters ---------------------------------------------------------------------------

    @staticmethod
    def string(value: Any) -> str:
        if isinstance(value, bool | dict | list):
            raise ValueError(f"expected a string, got {value!r}")
        return str(value)

    @staticmethod
    def boolean(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"expected true or false, got {value!r}")

    @staticmethod
    def integer(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise ValueError(f"expected a whole number, got {value!r}")

    @staticmethod
    def string_list(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in value
        ):
            raise ValueError(f"expected a list of strings, got {value!r}")
        return tuple(str(v) for v in value)

    def path_value(self, value: Any) -> Path:
        return self.base / self.string(value)

    @staticmethod
    def http_url(value: Any) -> str:
        url = str(value)
        parts = urlsplit(url)
        # A URL may carry a password (user:secret@host): never echo that part in an error.
        shown = repr(url.replace(parts.netloc, parts.netloc.rpartition("@")[2], 1))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{shown} is not an http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError(f"{shown} must not have a query or fragment")
        try:
            parts.port  # noqa: B018 - urllib checks the port only when it is read
        except ValueError:
            raise ValueError(f"{shown} has an invalid port") from None
        return url

    @staticmethod
    def cookie_name(value: Any) -> str:
        name = str(value)
        if not TOKEN_CHARS.match(name):
            raise ValueError(f"{name!r} is not a valid cookie name")
        return name
