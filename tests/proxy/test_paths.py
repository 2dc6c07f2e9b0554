"""Path normalisation (docs/behaviour.md#path-normalisation): what is matched is what is forwarded."""

from __future__ import annotations

import pytest

from gateway.proxy.paths import PathError, normalise_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"/a/b", "/a/b", id="plain path unchanged"),
        pytest.param(b"/a/b/", "/a/b/", id="trailing slash kept"),
        pytest.param(b"/public/../admin", "/admin", id="dot dot removed"),
        pytest.param(b"/public/%2e%2e/admin", "/admin", id="encoded dot dot decoded then removed"),
        pytest.param(b"/public/%2E./admin", "/admin", id="half encoded dot dot"),
        pytest.param(b"//admin", "/admin", id="double slash collapsed"),
        pytest.param(b"/a/./b", "/a/b", id="single dot removed"),
        pytest.param(b"/../../x", "/x", id="dot dot above root stays at root"),
        pytest.param(b"/a/%7Euser/%41", "/a/~user/A", id="unreserved characters decoded"),
        pytest.param(b"/a/%c3%a9", "/a/%C3%A9", id="other encodings kept, hex upper-cased"),
        pytest.param(b"/a/%20b", "/a/%20b", id="encoded space kept"),
        pytest.param("/a/é".encode(), "/a/%C3%A9", id="raw non-ASCII bytes encoded"),
        pytest.param(b"/a/b/..", "/a/", id="dot dot at the end keeps a slash"),
    ],
)
def test_normalises(raw: bytes, expected: str) -> None:
    assert normalise_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"/a%2Fb", id="encoded slash"),
        pytest.param(b"/a%2fb", id="lower-case encoded slash"),
        pytest.param(b"/a%5Cb", id="encoded backslash"),
        pytest.param(b"/a\\b", id="backslash"),
        pytest.param(b"/a%00", id="encoded NUL"),
        pytest.param(b"/a\x00", id="raw NUL"),
        pytest.param(b"/a%0d%0a", id="encoded CR LF"),
        pytest.param(b"/a\x7f", id="DEL"),
        pytest.param(b"/a;b", id="path parameter"),
        pytest.param(b"/a%3bb", id="encoded semicolon"),
        pytest.param(b"/a%", id="truncated encoding"),
        pytest.param(b"/a%zz", id="invalid encoding"),
        pytest.param(b"a/b", id="relative path"),
    ],
)
def test_refuses(raw: bytes) -> None:
    with pytest.raises(PathError):
        normalise_path(raw)


def test_path_parameters_pass_when_allowed() -> None:
    assert normalise_path(b"/a;v=1/b", allow_params=True) == "/a;v=1/b"
