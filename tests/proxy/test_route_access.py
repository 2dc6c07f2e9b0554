"""RouteAccess, Denial, NO_TOKEN and invalid_token: each refusal's status, code and header.

The exact ``WWW-Authenticate`` strings are RFC 6750 §3: no ``error`` attribute without a
token, ``invalid_token`` with a description for a refused one, ``insufficient_scope`` with the
route's whole scope list for a token that lacks one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from gateway.auth.errors import Failure, TokenError
from gateway.auth.token_cache import CachedToken
from gateway.proxy.access import NO_TOKEN, Denial, RouteAccess, invalid_token
from tests.configs import build_config, route

UP = "http://127.0.0.1:9000"
CONFIG = build_config(
    routes=[
        route("any-token", "/any", UP),
        route("orders", "/orders", UP, scopes=["orders:read", "orders:list"]),
        route("tenant", "/tenant", UP, claims={"tenant": "acme", "level": 3}),
        route("both", "/both", UP, scopes=["orders:read"], claims={"tenant": "acme"}),
    ]
)
ACCESS = {r.name: RouteAccess.compile(r) for r in CONFIG.routes}


def token(scopes: Iterable[str] = (), **claims: Any) -> CachedToken:
    """A verified token with ``scopes`` and ``claims``."""
    return CachedToken(
        exp=2e9, sid=None, claims={"sub": "alice", **claims}, scopes=frozenset(scopes), sub="alice"
    )


def challenge(denial: Denial) -> bytes | None:
    """The ``WWW-Authenticate`` value a denial is sent with, or None."""
    found = [value for name, value in denial.headers() if name == b"www-authenticate"]
    assert len(found) <= 1
    return found[0] if found else None


# -- a verified token against a route ----------------------------------------------------------


@pytest.mark.parametrize(
    ("route_name", "verified"),
    [
        pytest.param("any-token", token(), id="a route without scopes or claims: any token"),
        pytest.param("orders", token({"orders:read", "orders:list"}), id="every scope"),
        pytest.param("orders", token({"orders:read", "orders:list", "admin"}), id="more scopes"),
        pytest.param("tenant", token(tenant="acme", level=3), id="every claim"),
        pytest.param("both", token({"orders:read"}, tenant="acme"), id="scope and claim"),
    ],
)
def test_a_token_that_satisfies_the_route_passes(route_name: str, verified: CachedToken) -> None:
    assert ACCESS[route_name].check(verified) is None


@pytest.mark.parametrize(
    "scopes",
    [
        pytest.param(set(), id="no scope"),
        pytest.param({"orders:read"}, id="one of two"),
        pytest.param({"orders:read orders:list"}, id="both in one string"),
        pytest.param({"ORDERS:READ", "ORDERS:LIST"}, id="another letter case"),
    ],
)
def test_a_missing_scope_is_403_insufficient_scope(scopes: set[str]) -> None:
    denial = ACCESS["orders"].check(token(scopes))
    assert denial is not None
    assert (denial.status, denial.code, denial.reason) == (
        403,
        "insufficient_scope",
        "insufficient_scope",
    )


def test_insufficient_scope_names_all_the_routes_scopes() -> None:
    denial = ACCESS["orders"].check(token({"orders:read"}))
    assert denial is not None
    assert challenge(denial) == (
        b'Bearer realm="gateway", error="insufficient_scope", '
        b'error_description="A required scope is missing", scope="orders:read orders:list"'
    )
    assert denial.description == "This route requires the scopes: orders:read orders:list"


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"tenant": "other", "level": 3}, id="another value"),
        pytest.param({"tenant": "ACME", "level": 3}, id="another letter case"),
        pytest.param({"level": 3}, id="missing"),
        pytest.param({"tenant": "acme", "level": "3"}, id="a string for a number"),
        pytest.param({"tenant": ["acme"], "level": 3}, id="a list holding the value"),
    ],
)
def test_a_claim_that_does_not_match_is_403_forbidden(claims: dict[str, Any]) -> None:
    denial = ACCESS["tenant"].check(token(**claims))
    assert denial is not None
    assert (denial.status, denial.code, denial.reason) == (403, "forbidden", "claims")
    assert denial.description == "The token's claims do not allow this route"


def test_forbidden_has_no_www_authenticate() -> None:
    denial = ACCESS["tenant"].check(token(tenant="other"))
    assert denial is not None
    assert denial.headers() == []


def test_a_missing_scope_is_reported_before_a_wrong_claim() -> None:
    denial = ACCESS["both"].check(token(tenant="other"))
    assert denial is not None
    assert denial.code == "insufficient_scope"


def test_a_scope_cannot_break_out_of_its_quoted_string() -> None:
    config = build_config(routes=[route("odd", "/odd", UP, scopes=['a"b', "c\\d"])])
    denial = RouteAccess.compile(config.routes[0]).check(token())
    assert denial is not None
    header = challenge(denial)
    assert header is not None
    assert header.endswith(b', scope="ab cd"')


# -- no token, and a token that failed verification --------------------------------------------


def test_no_token_is_401_without_an_error_attribute() -> None:
    assert (NO_TOKEN.status, NO_TOKEN.code, NO_TOKEN.reason) == (401, "unauthorized", "missing")
    assert challenge(NO_TOKEN) == b'Bearer realm="gateway"'
    assert NO_TOKEN.description == "This route requires an access token"


def test_an_invalid_token_is_401_invalid_token_with_a_description() -> None:
    denial = invalid_token(TokenError(Failure.EXPIRED))
    assert (denial.status, denial.code, denial.reason) == (401, "invalid_token", "expired")
    assert challenge(denial) == (
        b'Bearer realm="gateway", error="invalid_token", '
        b'error_description="The access token expired"'
    )
    assert denial.description == "The access token expired"


def test_an_invalid_token_description_carries_its_detail() -> None:
    denial = invalid_token(TokenError(Failure.MISSING_CLAIM, "exp"))
    assert challenge(denial) == (
        b'Bearer realm="gateway", error="invalid_token", '
        b'error_description="The access token lacks a required claim: exp"'
    )


@pytest.mark.parametrize("failure", [pytest.param(f, id=f.label) for f in Failure])
def test_every_failure_is_401_invalid_token_labelled_by_its_reason(failure: Failure) -> None:
    denial = invalid_token(TokenError(failure))
    assert (denial.status, denial.code, denial.reason) == (401, "invalid_token", failure.label)
    assert challenge(denial) == (
        b'Bearer realm="gateway", error="invalid_token", error_description="'
        + failure.description.encode()
        + b'"'
    )


@pytest.mark.parametrize(
    ("detail", "shown"),
    [
        pytest.param('x", error="other', b"x, error=other", id="a quote"),
        pytest.param("a\\b", b"ab", id="a backslash"),
        pytest.param("a\r\nX-Injected: 1", b"aX-Injected: 1", id="CR LF"),
        pytest.param("caf\u00e9", b"caf?", id="not ASCII"),
    ],
)
def test_an_invalid_token_description_stays_one_quoted_string(detail: str, shown: bytes) -> None:
    header = challenge(invalid_token(TokenError(Failure.MALFORMED, detail)))
    assert header == (
        b'Bearer realm="gateway", error="invalid_token", '
        b'error_description="The access token is malformed: ' + shown + b'"'
    )
