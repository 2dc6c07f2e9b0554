"""extract_token: where a token may come from (docs/behaviour.md#access-tokens)."""

from __future__ import annotations

import pytest

from gateway.auth import InvalidRequest, extract_token

Headers = list[tuple[bytes, bytes]]


@pytest.mark.parametrize(
    ("headers", "query", "cookie", "token"),
    [
        pytest.param([(b"authorization", b"Bearer abc")], b"", None, "abc", id="a bearer header"),
        pytest.param(
            [(b"authorization", b"bEaReR abc")], b"", None, "abc", id="the scheme in any case"
        ),
        pytest.param(
            [(b"authorization", b"  Bearer   abc  ")], b"", None, "abc", id="extra spaces around"
        ),
        pytest.param(
            [(b"authorization", b"Bearer\tabc")], b"", None, "abc", id="a tab after the scheme"
        ),
        pytest.param([(b"authorization", b"Basic dTpw")], b"", None, None, id="Basic is no token"),
        pytest.param([(b"authorization", b"")], b"", None, None, id="an empty header is no token"),
        pytest.param(
            [(b"authorization", b"Bearer")], b"", None, "", id="Bearer with nothing is a bad token"
        ),
        pytest.param(
            [(b"authorization", b"Bearer   ")], b"", None, "", id="Bearer with spaces only"
        ),
        pytest.param(
            [(b"authorization", b"Bearer a b")], b"", None, "a b", id="garbage is passed on"
        ),
        pytest.param(
            [(b"authorization", b"Bearerabc")], b"", None, None, id="no space is another scheme"
        ),
        pytest.param([], b"access_token=abc", None, None, id="a query token is never accepted"),
        pytest.param(
            [(b"authorization", b"Basic dTpw")],
            b"access_token=abc",
            None,
            None,
            id="Basic plus a query token is no token",
        ),
        pytest.param(
            [(b"cookie", b"a=1; gw_access=abc; b=2")],
            b"",
            "gw_access",
            "abc",
            id="the access cookie",
        ),
        pytest.param(
            [(b"cookie", b"a=1"), (b"cookie", b"gw_access=abc")],
            b"",
            "gw_access",
            "abc",
            id="the access cookie in a second Cookie header",
        ),
        pytest.param(
            [(b"cookie", b'gw_access="abc"')], b"", "gw_access", "abc", id="a quoted cookie value"
        ),
        pytest.param(
            [(b"cookie", b"gw_access=")], b"", "gw_access", None, id="an empty cookie is no token"
        ),
        pytest.param(
            [(b"cookie", b'gw_access=abc; gw_access="abc"')],
            b"",
            "gw_access",
            "abc",
            id="the same access cookie twice is one token",
        ),
        pytest.param(
            [(b"cookie", b"gw_access=; gw_access=abc")],
            b"",
            "gw_access",
            "abc",
            id="an empty access cookie beside a token is no ambiguity",
        ),
        pytest.param(
            [(b"cookie", b"xgw_access=abc; gw_access_old=def")],
            b"",
            "gw_access",
            None,
            id="a cookie whose name only contains ours",
        ),
        pytest.param(
            [(b"cookie", b"gw_access=abc")], b"", None, None, id="cookies unless configured"
        ),
        pytest.param(
            [(b"cookie", b"gw_access=fromcookie"), (b"authorization", b"Bearer fromheader")],
            b"",
            "gw_access",
            "fromheader",
            id="the header wins over the cookie",
        ),
        pytest.param(
            [(b"authorization", b"Bearer abc")],
            b"page=2&sort=asc",
            None,
            "abc",
            id="other query parameters are fine",
        ),
        pytest.param(
            [(b"authorization", b"Bearer abc")],
            b"my_access_token=1",
            None,
            "abc",
            id="a parameter whose name only contains access_token",
        ),
        pytest.param([(b"x-other", b"Bearer abc")], b"", None, None, id="no credentials at all"),
    ],
)
def test_extract_token(
    headers: Headers, query: bytes, cookie: str | None, token: str | None
) -> None:
    assert extract_token(headers, query, cookie) == token


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        pytest.param(
            [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")],
            b"",
            id="two Authorization headers",
        ),
        pytest.param(
            [(b"authorization", b"Bearer a"), (b"authorization", b"Basic dTpw")],
            b"",
            id="a bearer and a Basic Authorization header",
        ),
        pytest.param(
            [(b"authorization", b"Bearer a")], b"access_token=b", id="bearer header and query token"
        ),
        pytest.param(
            [(b"authorization", b"Bearer a")],
            b"x=1&access_token",
            id="bearer header and an empty access_token parameter",
        ),
        pytest.param(
            [(b"authorization", b"Bearer a")],
            b"access%5Ftoken=b",
            id="bearer header and a percent-encoded access_token parameter",
        ),
        pytest.param(
            [(b"cookie", b"gw_access=planted; theme=1; gw_access=mine")],
            b"",
            id="two different access cookies",
        ),
        pytest.param(
            [(b"cookie", b"gw_access=planted"), (b"cookie", b"gw_access=mine")],
            b"",
            id="two different access cookies in two Cookie headers",
        ),
    ],
)
def test_ambiguous_credentials_are_an_invalid_request(headers: Headers, query: bytes) -> None:
    with pytest.raises(InvalidRequest):
        extract_token(headers, query, "gw_access")
