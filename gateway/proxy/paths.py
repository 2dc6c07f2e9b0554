"""Request-path normalisation, applied once before routing (docs/behaviour.md#path-normalisation).

The normalised path is both what the route table matches and what goes upstream, so the
gateway and the upstream can never disagree about which resource was asked for. That is why
anything an upstream might decode differently from us is refused instead of guessed at: an
encoded ``/`` or ``\\`` (``/public%2F..%2Fadmin`` reads as one segment here, as three on some
servers), a backslash (a separator on Windows stacks), NUL and control characters, and ``;``
path parameters (which some frameworks strip, turning ``/admin;x`` into ``/admin``).
"""

from __future__ import annotations

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset(b"0123456789abcdefABCDEF")
# Bytes that never appear unencoded in a path we accept: controls, space, DEL, backslash.
_FORBIDDEN = frozenset(range(0x21)) | {0x7F, ord("\\")}
_FORBIDDEN_DECODED = frozenset(range(0x20)) | {0x7F, ord("/"), ord("\\")}
# Fast path: a path made only of these bytes and free of "//", "/." needs no work.
# (bytes.translate deletes them in C; a set test would box every byte of the path.)
_PLAIN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/"


class PathError(ValueError):
    """A request path that is refused with 400; the message says why."""


def normalise_path(raw: bytes, *, allow_params: bool = False) -> str:
    """The canonical, still percent-encoded form of ``raw`` (the path as received)."""
    if not raw.startswith(b"/"):
        raise PathError("the path must start with /")
    # bytes.find, not `in`: on Python 3.11 `bytes in bytes` first tries the needle as an int and
    # builds a TypeError message it throws away (~2,000 instructions a test, every request).
    if not raw.translate(None, _PLAIN) and raw.find(b"//") < 0 and raw.find(b"/.") < 0:
        return raw.decode("ascii")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        byte = raw[i]
        if byte == 0x25:  # '%'
            if i + 3 > n:
                raise PathError("the path has a truncated percent-encoding")
            hi, lo = raw[i + 1], raw[i + 2]
            if hi not in _HEX or lo not in _HEX:
                raise PathError("the path has an invalid percent-encoding")
            value = int(raw[i + 1 : i + 3], 16)
            if value in _FORBIDDEN_DECODED:
                raise PathError("the path has an encoded /, \\ or control character")
            if value == 0x3B and not allow_params:
                raise PathError("the path has an encoded ;")
            if value in _UNRESERVED:
                out.append(value)
            else:
                out += b"%" + raw[i + 1 : i + 3].upper()
            i += 3
            continue
        if byte in _FORBIDDEN:
            raise PathError("the path has a backslash, space or control character")
        if byte == 0x3B and not allow_params:
            raise PathError("the path has ; path parameters")
        if byte >= 0x80:
            out += b"%%%02X" % byte
        else:
            out.append(byte)
        i += 1
    return _remove_dot_segments(out.decode("ascii"))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, plus collapsing of empty segments (``//``)."""
    segments = path.split("/")
    trailing = segments[-1] in ("", ".", "..")
    kept: list[str] = []
    for segment in segments:
        if segment in ("", "."):
            continue
        if ";" in segment and segment.partition(";")[0] in (".", ".."):
            # With path parameters allowed: Tomcat and servers like it read "..;x" as "..", so it
            # would climb above the route the gateway matched. Refused, never guessed at.
            raise PathError("the path has a dot segment with ; parameters")
        if segment == "..":
            if kept:
                kept.pop()
            continue
        kept.append(segment)
    result = "/" + "/".join(kept)
    if trailing and kept:
        result += "/"
    return result
