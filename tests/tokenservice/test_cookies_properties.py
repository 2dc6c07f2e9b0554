"""Properties of ``read_cookies`` (docs/behaviour.md#several-cookies-of-one-name), on generated
``Cookie`` headers.

Whatever ``Cookie`` headers a request carries, ``read_cookies`` never raises, and returns at
most ``limit`` distinct, non-empty values, each one text that appeared in a header. And it
reads a header as ``extract_token`` reads the access cookie: the token service and the proxy
must agree on which cookies a request carries under a name, or a cookie one of them ignores
is one the other acts on.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.auth import InvalidRequest, extract_token
from gateway.tokenservice.cookies import read_cookies

NAME = "gw_refresh"
# What the HTTP server hands on: a header value's bytes (HTAB, visible ASCII, obs-text; it
# refuses other controls) decoded as latin-1, as Starlette does.
WIRE = "\t" + "".join(map(chr, range(0x20, 0x7F))) + "".join(map(chr, range(0x80, 0x100)))
wire_text = st.text(st.sampled_from(WIRE), max_size=20)

pairs = st.builds(
    lambda lead, name, sep, value: lead + name + sep + value,
    # Whitespace of every kind the wire lets through: space, tab, and latin-1's NBSP and NEL.
    st.sampled_from(["", "", " ", "\t", "  ", "\xa0", "\x85"]),
    st.sampled_from([NAME, NAME, NAME + " ", NAME + "\t", "GW_REFRESH", "gw", "other", ""]),
    st.sampled_from(["=", "=", "=", " = ", "==", "\xa0=", ""]),
    st.one_of(
        st.sampled_from(["tok", "tok2", '"tok"', '"', '""', "", " tok ", "a=b", "tok;", "tok\xa0"]),
        wire_text,
    ),
)
cookie_headers = st.lists(
    st.one_of(
        st.lists(pairs, max_size=5).map("; ".join),
        st.lists(pairs, max_size=5).map(";".join),
        wire_text,
    ),
    max_size=4,
)
limits = st.integers(1, 20)


@given(cookie_headers, limits)
@example(["gw_refresh=a; gw_refresh=b; gw_refresh=a"], 16)
@example(['gw_refresh=""; gw_refresh="'], 16)
def test_read_cookies_returns_at_most_limit_distinct_values_that_appeared(
    headers: list[str], limit: int
) -> None:
    values = read_cookies(headers, NAME, limit=limit)
    assert len(values) <= limit
    assert len(set(values)) == len(values)
    for value in values:
        assert value, values
        assert any(value in header for header in headers), (value, headers)


@given(cookie_headers, st.text(max_size=12), limits)
def test_read_cookies_never_raises_whatever_the_name(
    headers: list[str], name: str, limit: int
) -> None:
    assert isinstance(read_cookies(headers, name, limit=limit), list)


def as_the_proxy_reads(headers: list[str]) -> list[str] | InvalidRequest:
    """The values ``extract_token`` would see under ``NAME``: one, none, or a refusal of two."""
    try:
        token = extract_token([(b"cookie", h.encode("latin-1")) for h in headers], b"", NAME)
    except InvalidRequest as refusal:
        return refusal
    return [] if token is None else [token]


def agrees(headers: list[str]) -> bool:
    values = read_cookies(headers, NAME, limit=64)
    seen = as_the_proxy_reads(headers)
    if len(values) > 1:
        return isinstance(seen, InvalidRequest)
    return seen == values


# Regression: read_cookies once trimmed NBSP and NEL (str.strip) where the extractor and the
# header policy trim SP and HTAB only, so one cookie could be seen by one and not the other.


@given(cookie_headers)
@example(["gw_refresh=a", "gw_refresh=b"])
@example(['gw_refresh="a"; gw_refresh=a'])
def test_read_cookies_and_the_access_cookie_reader_agree_on_wire_headers(
    headers: list[str],
) -> None:
    assert agrees(headers), (
        headers,
        read_cookies(headers, NAME, limit=64),
        as_the_proxy_reads(headers),
    )


@pytest.mark.parametrize(
    "header",
    ["gw_refresh\xa0=tok", "\xa0gw_refresh=tok", "\x85gw_refresh=tok", "gw_refresh=tok\xa0"],
)
def test_a_cookie_name_or_value_is_trimmed_of_space_and_tab_only(header: str) -> None:
    assert agrees([header]), (read_cookies([header], NAME, limit=64), as_the_proxy_reads([header]))
