"""The route table: longest prefix on segment boundaries, then the method."""

from __future__ import annotations

import pytest

from gateway.config import Route
from gateway.proxy.routing import MethodNotAllowed, RouteMatch, RouteTable


def route(name: str, path: str, methods: set[str] | None = None, strip: str | None = None) -> Route:
    return Route(
        name=name,
        path=path,
        upstreams=("http://u",),
        methods=frozenset(methods) if methods else None,
        strip_prefix=strip,
    )


TABLE = RouteTable(
    (
        route("root", "/"),
        route("api", "/api"),
        route("orders-read", "/api/orders", {"GET", "HEAD"}),
        route("orders-write", "/api/orders", {"POST"}),
        route("v1", "/v1/things", strip="/v1"),
    )
)


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        pytest.param("GET", "/api/orders/7", "orders-read", id="longest prefix wins"),
        pytest.param("POST", "/api/orders", "orders-write", id="method chooses among equals"),
        pytest.param("GET", "/api/ordersx", "api", id="prefix only on segment boundaries"),
        pytest.param("GET", "/api", "api", id="exact path"),
        pytest.param("GET", "/api/", "api", id="trailing slash"),
        pytest.param("GET", "/other", "root", id="root catches the rest"),
    ],
)
def test_match(method: str, path: str, name: str) -> None:
    match = TABLE.match(method, path)
    assert isinstance(match, RouteMatch)
    assert match.route.name == name


def test_a_method_no_route_allows_is_405_not_a_shorter_prefix() -> None:
    match = TABLE.match("DELETE", "/api/orders/7")
    assert match == MethodNotAllowed(("GET", "HEAD", "POST"))


def test_no_prefix_is_none() -> None:
    assert RouteTable((route("api", "/api"),)).match("GET", "/elsewhere") is None


def test_strip_prefix_shapes_the_upstream_path() -> None:
    match = TABLE.match("GET", "/v1/things/3")
    assert isinstance(match, RouteMatch)
    assert match.upstream_path == "/things/3"
