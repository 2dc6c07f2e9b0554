"""The ``routes`` section: each route checked, then the table as a whole (names, overlaps)."""

from __future__ import annotations

import re
from typing import Any

from gateway.config.model import (
    RESERVED_PREFIXES,
    HeaderRules,
    RateLimit,
    Route,
    ServerConfig,
    is_reserved,
)
from gateway.config.owned_headers import OWNED_UPSTREAM, SETTABLE_OWNED
from gateway.config.reader import NO_STRINGS, TOKEN_CHARS, Reader
from gateway.config.units import UnitError, parse_duration, parse_rate, parse_size
from gateway.config.yaml_source import Path_

_ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_METHOD = re.compile(r"^[A-Z]+$")


class RouteChecks(Reader):
    """Builds the route table, recording every problem with its line."""

    def routes(self, value: Any, server: ServerConfig) -> tuple[Route, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(("routes",), "routes must be a list")
            return ()
        routes = [self.route(item, ("routes", i), server) for i, item in enumerate(value)]
        built = [r for r in routes if r is not None]
        names: dict[str, int] = {}
        for index, route in enumerate(built):
            if route.name in names:
                self.error(
                    ("routes", index, "name"),
                    f"route name {route.name!r} is already used on line {names[route.name]}",
                )
            names.setdefault(route.name, route.line)
            for other in built[:index]:
                if other.path == route.path and _methods_overlap(other.methods, route.methods):
                    self.error(
                        ("routes", index, "path"),
                        f"route {route.name!r} has the same path and methods as route "
                        f"{other.name!r} (line {other.line})",
                    )
        return tuple(built)

    def route(self, value: Any, p: Path_, server: ServerConfig) -> Route | None:
        keys = frozenset(
            {
                "name",
                "path",
                "methods",
                "upstream",
                "strip_prefix",
                "auth",
                "scopes",
                "claims",
                "timeout",
                "max_body",
                "forward_authorization",
                "rate_limit",
                "headers",
                "identity_assertion",
            }
        )
        if not isinstance(value, dict):
            self.error(p, "each route must be a mapping")
            return None
        m = self.section(value, p, keys)
        line = self.doc.line(p)
        name = self.get(m, p, "name", self.string, "")
        if not name:
            self.error(p, "route: name is required")
        elif not _ROUTE_NAME.match(name):
            self.error((*p, "name"), f"route name {name!r}: use letters, digits, _ . : -")
        path = self.get(m, p, "path", self.string, "")
        if not path:
            self.error(p, f"route {name!r}: path is required")
        elif not path.startswith("/") or "//" in path or "/./" in path or "/../" in path:
            self.error((*p, "path"), f"path {path!r} must be an absolute, normalised path")
        path = path.rstrip("/") or "/"
        if is_reserved(path):
            reserved = next(x for x in RESERVED_PREFIXES if path.startswith(x))
            self.error((*p, "path"), f"path {path!r} is under the gateway's own {reserved}")
        methods = None
        if "methods" in m and m["methods"] is not None:
            listed = self.get(m, p, "methods", self.string_list, NO_STRINGS)
            methods = frozenset(x.upper() for x in listed)
            for method in methods:
                if not _METHOD.match(method):
                    self.error((*p, "methods"), f"methods: {method!r} is not an HTTP method")
            if "GET" in methods:
                methods = methods | {"HEAD"}
        upstreams: tuple[str, ...] = ()
        raw_upstream = m.get("upstream")
        if raw_upstream is None:
            self.error(p, f"route {name!r}: upstream is required")
        else:
            items = raw_upstream if isinstance(raw_upstream, list) else [raw_upstream]
            if not items:
                self.error((*p, "upstream"), "upstream: the list is empty")
            found: list[str] = []
            for item in items:
                try:
                    found.append(self.http_url(item).rstrip("/"))
                except ValueError as exc:
                    self.error((*p, "upstream"), f"upstream: {exc}")
            upstreams = tuple(found)
        strip_prefix = self.get(m, p, "strip_prefix", self.string, None)
        if strip_prefix is not None:
            strip_prefix = strip_prefix.rstrip("/")
            if not strip_prefix.startswith("/") or not (
                path == strip_prefix or path.startswith(strip_prefix + "/")
            ):
                self.error(
                    (*p, "strip_prefix"),
                    f"strip_prefix {strip_prefix!r} is not a leading part of path {path!r}",
                )
        auth = self.get(m, p, "auth", self.string, "required")
        if auth not in ("required", "optional", "public"):
            self.error((*p, "auth"), f"auth: {auth!r} is not required, optional or public")
            auth = "required"
        claims_value = m.get("claims") or {}
        if not isinstance(claims_value, dict):
            self.error((*p, "claims"), "claims must be a mapping of claim to value")
            claims_value = {}
        scopes = self.get(m, p, "scopes", self.string_list, NO_STRINGS)
        if auth == "public" and (scopes or claims_value):
            self.error(p, f"route {name!r}: a public route cannot require scopes or claims")
        rate = None
        if m.get("rate_limit") is not None:
            try:
                count, window = parse_rate(m["rate_limit"])
                rate = RateLimit(count=count, window=window)
            except UnitError as exc:
                self.error((*p, "rate_limit"), f"rate_limit: {exc}")
        return Route(
            name=name,
            path=path,
            upstreams=upstreams,
            methods=methods,
            strip_prefix=strip_prefix or None,
            auth="optional" if auth == "optional" else "public" if auth == "public" else "required",
            scopes=scopes,
            claims=tuple(sorted(claims_value.items())),
            timeout=self.get(m, p, "timeout", parse_duration, 30.0),
            max_body=self.get(m, p, "max_body", parse_size, server.max_body),
            forward_authorization=self.get(m, p, "forward_authorization", self.boolean, False),
            rate_limit=rate,
            headers=self.header_rules(m.get("headers"), (*p, "headers")),
            identity_assertion=self.get(m, p, "identity_assertion", self.boolean, True),
            line=line,
        )

    def header_rules(self, value: Any, p: Path_) -> HeaderRules:
        m = self.section(value, p, frozenset({"set", "remove"}))
        set_value = m.get("set") or {}
        if not isinstance(set_value, dict):
            self.error((*p, "set"), "headers.set must be a mapping of header to value")
            set_value = {}
        pairs: list[tuple[str, str]] = []
        for header, header_value in set_value.items():
            text = "" if header_value is None else str(header_value)
            if not TOKEN_CHARS.match(header) or any(ord(c) < 32 for c in text):
                self.error((*p, "set", header), f"headers.set: {header!r} is not a valid header")
                continue
            if header.lower() in OWNED_UPSTREAM - SETTABLE_OWNED:
                self.error((*p, "set", header), f"headers.set: {header} is the gateway's to set")
                continue
            pairs.append((header.lower(), text))
        remove = self.get(m, p, "remove", self.string_list, NO_STRINGS)
        return HeaderRules(set=tuple(pairs), remove=frozenset(h.lower() for h in remove))


def _methods_overlap(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    return a is None or b is None or bool(a & b)
