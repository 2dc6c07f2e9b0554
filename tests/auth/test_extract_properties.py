"""Properties of ``extract_token`` (docs/behaviour.md#access-tokens), on generated requests.

Whatever header list and query string a request carries, ``extract_token`` returns a token,
``""`` or None, or refuses the request with ``InvalidRequest``: no other exception. A token it
returns is text the request carried in ``Authorization`` or in the access cookie, never in the
query string; two ``Authorization`` headers are always refused.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.auth import InvalidRequest, extract_token

COOKIE = "gw_access"
# Bytes the HTTP parser lets through in a header value (HTAB, visible ASCII, obs-text), and
# arbitrary bytes, which a caller other than the server might pass.
WIRE = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
wire_bytes = st.lists(st.sampled_from(WIRE), max_size=30).map(bytes)
any_bytes = st.one_of(wire_bytes, st.binary(max_size=30))

authorization_values = st.one_of(
    st.sampled_from([b"Bearer abc", b"bearer", b"Bearer ", b"BEARER\tx", b"Basic dTpw", b""]),
    st.builds(
        lambda scheme, rest: scheme + rest, st.sampled_from([b"Bearer ", b"bEaReR "]), any_bytes
    ),
    any_bytes,
)
cookie_pairs = st.builds(
    lambda name, sep, value: name + sep + value,
    st.sampled_from(
        [COOKIE.encode(), b" gw_access", b"gw_access ", b"GW_ACCESS", b"gw", b"a", b""]
    ),
    st.sampled_from([b"=", b"=", b" = ", b""]),
    st.one_of(st.sampled_from([b"tok", b'"tok"', b'"', b"", b"other", b"a=b"]), wire_bytes),
)
cookie_values = st.one_of(
    st.lists(cookie_pairs, max_size=4).map(b";".join),
    st.lists(cookie_pairs, max_size=4).map(b"; ".join),
    any_bytes,
)
headers = st.lists(
    st.one_of(
        st.tuples(st.just(b"authorization"), authorization_values),
        st.tuples(st.just(b"cookie"), cookie_values),
        st.tuples(st.sampled_from([b"x-other", b"accept", b"authorizations"]), any_bytes),
    ),
    max_size=5,
)
queries = st.one_of(
    st.sampled_from([b"", b"access_token=abc", b"a=1&access%5Ftoken=x", b"access+token=", b"%"]),
    st.lists(
        st.sampled_from([b"access_token", b"access%5ftoken", b"%61ccess_token", b"x", b"=", b"&"]),
        max_size=5,
    ).map(b"".join),
    any_bytes,
)
cookie_names = st.sampled_from([None, COOKIE, "__Host-gw_access"])


def extracted(
    headers: list[tuple[bytes, bytes]], query: bytes, cookie: str | None
) -> str | InvalidRequest | None:
    try:
        return extract_token(headers, query, cookie)
    except InvalidRequest as refusal:
        return refusal


@given(headers, queries, cookie_names)
@example([(b"authorization", b"Bearer"), (b"cookie", b"gw_access=x")], b"", COOKIE)
def test_a_request_gives_a_token_none_or_invalid_request(
    headers: list[tuple[bytes, bytes]], query: bytes, cookie: str | None
) -> None:
    result = extracted(headers, query, cookie)
    assert result is None or isinstance(result, str | InvalidRequest)


@given(headers, queries, cookie_names)
@example([(b"cookie", b'gw_access="tok"')], b"", COOKIE)
def test_a_token_is_text_the_request_carried_in_authorization_or_the_cookie(
    headers: list[tuple[bytes, bytes]], query: bytes, cookie: str | None
) -> None:
    token = extracted(headers, query, cookie)
    if isinstance(token, str) and token:
        carriers = [
            value
            for name, value in headers
            if name == b"authorization" or (name == b"cookie" and cookie is not None)
        ]
        assert any(token.encode("latin-1") in value for value in carriers), (token, headers)


@given(st.lists(st.tuples(st.sampled_from([b"x-other", b"accept"]), any_bytes)), queries)
@example([], b"access_token=abc")
def test_a_token_in_the_query_string_alone_is_never_taken(
    headers: list[tuple[bytes, bytes]], query: bytes
) -> None:
    assert extracted(headers, query, COOKIE) is None


@given(headers, authorization_values, authorization_values, queries, cookie_names)
def test_two_authorization_headers_are_always_refused(
    headers: list[tuple[bytes, bytes]],
    first: bytes,
    second: bytes,
    query: bytes,
    cookie: str | None,
) -> None:
    sent = [*headers, (b"authorization", first), (b"authorization", second)]
    assert isinstance(extracted(sent, query, cookie), InvalidRequest)
