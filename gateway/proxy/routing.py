"""The route table: longest prefix on segment boundaries, then the method.

The table is compiled once per configuration into a dict from prefix to the routes sharing it,
so a match is at most one dict lookup per path segment. The longest matching prefix decides the
route; the method only chooses among routes with that exact prefix. A method that none of them
allows is a 405 rather than a fall-back to a shorter prefix, because falling back would let
``GET /api/admin`` slip onto a public ``/api`` route when ``/api/admin`` only lists ``POST``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.config import Route


class RouteMatch:
    """The route chosen for a request and the path to send upstream.

    A plain class: compiled (mypyc), a frozen dataclass's generated ``__init__`` stays Python and
    sets each field through ``object.__setattr__`` (3,300 instructions per request)."""

    __slots__ = ("route", "upstream_path")

    def __init__(self, route: Route, upstream_path: str) -> None:
        self.route: Final = route
        self.upstream_path: Final = upstream_path


@dataclass(frozen=True, slots=True)
class MethodNotAllowed:
    """The path matched, the method did not; ``allow`` lists what would have."""

    allow: tuple[str, ...]


class _Slot:
    __slots__ = ("allow", "any_method", "by_method")

    def __init__(self, routes: list[Route]) -> None:
        self.any_method: Route | None = next((r for r in routes if r.methods is None), None)
        self.by_method: dict[str, Route] = {}
        for route in routes:
            for method in route.methods or ():
                self.by_method[method] = route
        self.allow = tuple(sorted(self.by_method))


class RouteTable:
    """Routes compiled for lookup by normalised path and method."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        grouped: dict[str, list[Route]] = {}
        for route in routes:
            grouped.setdefault(route.path, []).append(route)
        self._slots = {path: _Slot(group) for path, group in grouped.items()}

    def match(self, method: str, path: str) -> RouteMatch | MethodNotAllowed | None:
        """The route for ``method`` and the normalised ``path``; ``None`` when no prefix matches."""
        slots = self._slots
        prefix = path.rstrip("/") or "/"
        while True:
            slot = slots.get(prefix)
            if slot is not None:
                route = slot.by_method.get(method) or slot.any_method
                if route is None:
                    return MethodNotAllowed(slot.allow)
                return RouteMatch(route, _upstream_path(route, path))
            if prefix == "/":
                return None
            cut = prefix.rfind("/")
            prefix = prefix[:cut] or "/"


def _upstream_path(route: Route, path: str) -> str:
    strip = route.strip_prefix
    if strip is None:
        return path
    rest = path[len(strip) :]
    return rest if rest.startswith("/") else "/" + rest
