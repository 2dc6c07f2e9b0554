"""Properties of ``safe_next``, where a browser goes after signing in, on generated values.

Whatever ``next`` a request carries, ``safe_next`` gives None (no value at all), ``/``, or the
value itself when it is a path on this origin: one leading ``/`` (never ``//`` or ``/\\``,
which browsers read as another host), no ASCII whitespace or control character (which browsers
drop before parsing), and, sent as the ``Location`` of the redirect or navigated to by the
sign-in page's script, a URL on the gateway's origin as a browser reads it.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urljoin, urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.tokenservice.pages import MAX_NEXT, safe_next

LOGIN = "https://gw.example/auth/login"
PIECES = [
    "/",
    "/",
    "//",
    "\\",
    "/\\",
    "\t",
    "\n",
    "\r",
    " ",
    "\x00",
    "\x7f",
    "\x85",
    "\u3000",
    "\uff0f",  # fullwidth solidus
    "http:",
    "https://evil.example",
    "javascript:alert(1)",
    "evil.example",
    "@",
    ":",
    ".",
    "..",
    "?next=//evil",
    "#",
    "%2F",
    "%5C",
    "%09",
    "orders",
    "é",
]
values = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.lists(st.sampled_from(PIECES), max_size=6).map("".join),
    st.lists(st.sampled_from(PIECES), max_size=6).map(lambda pieces: "/" + "".join(pieces)),
    st.just("/" + "a" * MAX_NEXT),
)


@given(values)
@example(None)
@example("")
@example("//evil.example")
@example("/\\evil.example")
@example("/\t/evil.example")
@example("https://evil.example/")
@example("/orders?id=1#top")
def test_next_is_none_the_root_or_the_value_itself(value: str | None) -> None:
    result = safe_next(value)
    if not value:
        assert result is None
    else:
        assert result in ("/", value), (value, result)


@given(values)
def test_next_is_a_path_with_one_leading_slash_and_no_whitespace_or_control(
    value: str | None,
) -> None:
    result = safe_next(value)
    if result is not None:
        assert result.startswith("/") and len(result) <= MAX_NEXT + 1, result
        assert not result.startswith(("//", "/\\")), result
        assert "\\" not in result, result
        # ASCII whitespace and C0/C1 controls; other Unicode spaces ("\u3000") are percent-
        # encoded by the browser and by the redirect like any non-ASCII character.
        assert not re.search(r"[\x00-\x20\x7f-\x9f]", result), result


def as_a_browser_reads(url: str) -> str:
    """What a browser's URL parser (WHATWG) makes of ``url`` before resolving it: tab and
    newlines removed, leading and trailing controls and spaces stripped, ``\\`` read as ``/``."""
    return re.sub(r"[\t\n\r]", "", url).strip("".join(map(chr, range(0x21)))).replace("\\", "/")


@given(values)
@example("/\t/evil.example")
@example(" //evil.example")
def test_next_as_the_redirects_location_stays_on_the_gateways_origin(value: str | None) -> None:
    result = safe_next(value)
    if result is not None:
        # Starlette's RedirectResponse quotes the URL for the Location header like this; the
        # sign-in page's script navigates to the value itself (location.replace).
        location = quote(result, safe=":/%#?=@[]!$&'()*+,;")
        for url in (result, location):
            seen = as_a_browser_reads(url)
            assert seen.startswith("/") and not seen.startswith("//"), (value, url)
            parts = urlsplit(urljoin(LOGIN, seen))
            assert (parts.scheme, parts.netloc) == ("https", "gw.example"), (value, url)
