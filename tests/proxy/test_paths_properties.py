"""Properties of the path normaliser (docs/behaviour.md#path-normalisation), on generated paths.

Whatever bytes a client puts in the request line, ``normalise_path`` either refuses them with
``PathError`` (400) and nothing else, or returns the one path that is both matched against the
route table and sent upstream: it starts with one ``/``, holds no dot segment, no empty segment,
nothing an upstream could decode differently (an encoded ``/`` or ``\\``, a control character, a
backslash, a space), normalising it again changes nothing, and appended to a target URL it can
never name another host. The examples in ``test_paths.py`` say what each rule does; these say
that no combination of the nasty pieces below breaks one.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from gateway.proxy.paths import PathError, normalise_path

# Pieces that have broken path normalisers somewhere: dot segments in every encoding, path
# parameters (Tomcat's "..;"), separators encoded or not, NUL and CR LF, broken and double
# percent-encodings, characters that mean something in a URL, non-ASCII text and raw bytes.
NASTY = [
    ".",
    "..",
    "...",
    "%2e",
    "%2E",
    ".%2e",
    "%2e.",
    "%2e%2e",
    "%2E%2e",
    "%2E%2E",
    "%252e",
    "%252e%252e",
    "",
    "a",
    "admin",
    "public",
    "~user",
    "%7e",
    "%7E",
    "%41",
    "%61dmin",
    ";",
    ";x=1",
    "..;",
    ".;x",
    "%2e%2e;",
    "%3b",
    "%3B",
    "\\",
    "..\\",
    "%5c",
    "%5C",
    "%2f",
    "%2F",
    "%252F",
    "%00",
    "\x00",
    "%0d%0a",
    "\r\n",
    "%09",
    "\t",
    " ",
    "%20",
    "\x7f",
    "%7f",
    "%",
    "%2",
    "%zz",
    "%G0",
    "%25",
    "%%32%65",
    "?",
    "#",
    ":",
    "@",
    "http:",
    "evil.example",
    "@evil.example",
    "é",
    "%C3%A9",
    "%c3%a9",
    "%80",
    "%FF",
    "\uff0e\uff0e",  # fullwidth dots
    "\U0001f600",
]

# The pieces of NASTY the normaliser accepts (with path parameters allowed, at least), so that
# a good share of the generated paths get through to the properties of the result.
# Refused: a backslash, a control character or space, a broken or a forbidden encoding.
_REFUSED_PIECE = re.compile(r"[\\\x00-\x20\x7f]|%(?![0-9a-f]{2})|%(?:[01].|7f|2f|5c)", re.I)
PASSING = [s for s in NASTY if not _REFUSED_PIECE.search(s)]
segment = st.one_of(
    st.sampled_from(NASTY).map(lambda s: s.encode("utf-8")),
    st.text(max_size=4).map(lambda s: s.encode("utf-8")),
    st.binary(max_size=4),
)
passing_segment = st.sampled_from(PASSING).map(lambda s: s.encode("utf-8"))


def joined(parts: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda lead, segments: lead + b"/".join(segments),
        st.sampled_from([b"/", b"/", b"/", b"//", b"///", b"/\\", b"\\", b""]),
        st.lists(parts, max_size=8),
    )


# Absolute paths built from the pieces (most of them), a few that are not absolute, raw bytes.
paths = st.one_of(
    joined(segment),
    joined(passing_segment),
    joined(passing_segment),
    st.binary(max_size=24).map(lambda raw: b"/" + raw),
    st.binary(max_size=24),
)
allow_params = st.booleans()

_ENCODED_FORBIDDEN = re.compile(r"%(?:[01][0-9a-f]|7f|2f|5c)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def normalised(raw: bytes, allow: bool) -> str | None:
    """The normalised path, or None when it is refused; any other exception fails the test."""
    try:
        result = normalise_path(raw, allow_params=allow)
    except PathError:
        event("refused")
        return None
    event("normalised")
    return result


@given(paths, allow_params)
@example(b"/a/%c3%a9", False)
@example("/a/é".encode(), True)
def test_a_path_is_refused_with_path_error_or_normalised_to_ascii_text(
    raw: bytes, allow: bool
) -> None:
    result = normalised(raw, allow)
    if result is not None:
        assert isinstance(result, str)
        assert result.isascii(), result  # bytes above 0x7F are percent-encoded


@given(paths, allow_params)
@example(b"", False)
@example(b"//admin", False)
@example(b"/..", True)
def test_a_normalised_path_starts_with_a_slash(raw: bytes, allow: bool) -> None:
    result = normalised(raw, allow)
    if result is not None:
        assert result.startswith("/"), result


@given(paths, allow_params)
@example(b"/public/%2e%2e/admin", False)
@example(b"/public/.%2E/admin", True)
@example(b"/a/b/..", False)
def test_a_normalised_path_has_no_dot_segment(raw: bytes, allow: bool) -> None:
    result = normalised(raw, allow)
    if result is not None:
        segments = result.split("/")
        assert not [s for s in segments if s in (".", "..")], result
        assert not [s for s in segments if unquote(s) in (".", "..")], result


@given(paths, allow_params)
@example(b"//admin", False)
@example(b"/a///b", True)
@example(b"/a/./../b", False)
def test_a_normalised_path_has_no_empty_segment(raw: bytes, allow: bool) -> None:
    result = normalised(raw, allow)
    if result is not None:
        assert "//" not in result, result


@given(paths, allow_params)
@example(b"/a%2Fb", False)
@example(b"/a%5cb", True)
@example(b"/a\\b", True)
@example(b"/a%0d%0aX-Injected:%20yes", True)
@example(b"/a b", False)
def test_a_normalised_path_holds_no_control_character_space_backslash_or_encoded_separator(
    raw: bytes, allow: bool
) -> None:
    result = normalised(raw, allow)
    if result is not None:
        # Also what keeps the upstream's request line one line: no space, CR or LF.
        assert not _CONTROL.search(result), result
        assert "\\" not in result, result
        assert not _ENCODED_FORBIDDEN.search(result), result
        if not allow:
            assert ";" not in result and "%3b" not in result.lower(), result


@given(paths, allow_params)
@example(b"/a/%252e%252e/b", False)
@example(b"/%7euser/%c3%a9/", True)
@example(b"/a/..", False)
def test_normalising_a_normalised_path_changes_nothing(raw: bytes, allow: bool) -> None:
    result = normalised(raw, allow)
    if result is not None:
        assert normalise_path(result.encode("ascii"), allow_params=allow) == result


@given(paths, allow_params, st.sampled_from(["http://upstream", "http://upstream:9000/v2"]))
@example(b"//evil.example/x", False, "http://upstream")
@example(b"/@evil.example", False, "http://upstream")
@example(b"/..//evil.example", True, "http://upstream:9000/v2")
def test_a_normalised_path_never_changes_the_upstream_host(
    raw: bytes, allow: bool, target: str
) -> None:
    result = normalised(raw, allow)
    if result is not None:
        url = urlsplit(target + result)
        assert url.netloc == urlsplit(target).netloc, (target, result)
        assert url.path.startswith(urlsplit(target).path + "/"), (target, result)


# -- found by the properties ---------------------------------------------------------------------

# Regression: with allow_path_params, '..;' and '.;x' were kept, and servers that strip
# path parameters resolve them as dot segments (/public/..;/admin served as /admin).


@given(paths)
@example(b"/public/..;/admin")
def test_with_path_parameters_no_segment_is_a_dot_segment_once_its_parameters_are_cut(
    raw: bytes,
) -> None:
    result = normalised(raw, True)
    if result is not None:
        bare = [unquote(s).partition(";")[0] for s in result.split("/")[1:]]
        assert not [s for s in bare if s in (".", "..")], result


@pytest.mark.parametrize("raw", [b"/public/..;/admin", b"/public/%2e%2e;x/admin", b"/a/.;/b"])
def test_a_dot_segment_with_parameters_is_refused(raw: bytes) -> None:
    with pytest.raises(PathError):
        normalise_path(raw, allow_params=True)
