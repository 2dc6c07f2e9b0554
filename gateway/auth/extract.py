"""Finding the access token in a request, on the raw ASGI header list.

What it accepts: docs/behaviour.md#access-tokens.

Where a token may come from, and why:

- ``Authorization: Bearer <token>``, the scheme in any letter case (RFC 7235). Another scheme
  (``Basic``) is not ours: the request counts as carrying no token. ``Bearer`` with nothing after
  it returns ``""``, which the verifier refuses as malformed: a client that meant to send a token
  must hear that it is bad, not be served anonymously on an ``optional`` route.
- The access cookie, when configured, and only when there is no ``Authorization`` header.
- Never the query string: URLs end up in logs, browser history and ``Referer`` headers.
- Ambiguity is refused with 400 rather than resolved: two ``Authorization`` headers, a bearer
  header plus an ``access_token`` query parameter (RFC 6750 §2 allows one method per request),
  or two different access cookies. A
  gateway and its upstream choosing different copies is how authentication gets bypassed.

This runs on every request, so it makes one pass over the headers and allocates little.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

from gateway.auth.errors import InvalidRequest

__all__ = ["extract_token"]


def extract_token(
    headers: Sequence[tuple[bytes, bytes]], query_string: bytes, cookie_name: str | None
) -> str | None:
    """The bearer token of a request, ``""`` for an empty ``Bearer``, or None when there is none.

    Raises ``InvalidRequest`` when the request carries its token ambiguously.
    """
    authorization: bytes | None = None
    cookies: list[bytes] | None = None
    for name, value in headers:
        if name == b"authorization":
            if authorization is not None:
                raise InvalidRequest("More than one Authorization header")
            authorization = value
        elif name == b"cookie" and cookie_name is not None:
            if cookies is None:
                cookies = [value]
            else:
                cookies.append(value)

    if authorization is not None:
        parts = authorization.split(None, 1)
        if not parts or parts[0].lower() != b"bearer":
            return None
        if query_string and _has_access_token_parameter(query_string):
            raise InvalidRequest("A bearer token in both the Authorization header and the query")
        return parts[1].strip().decode("latin-1") if len(parts) == 2 else ""
    if cookies is not None and cookie_name is not None:
        return _cookie(cookies, cookie_name.encode("latin-1"))
    return None


def _has_access_token_parameter(query_string: bytes) -> bool:
    # bytes.find, not `in`: on Python 3.11 `bytes in bytes` first tries the needle as an int and
    # builds a TypeError message it throws away (~2,000 instructions a test, every request).
    if query_string.find(b"access_token") < 0 and query_string.find(b"%") < 0:
        return False
    for pair in query_string.split(b"&"):
        name = pair.partition(b"=")[0]
        if name.find(b"%") >= 0 or name.find(b"+") >= 0:
            name = unquote_to_bytes(name.replace(b"+", b" "))
        if name == b"access_token":
            return True
    return False


def _cookie(headers: list[bytes], wanted: bytes) -> str | None:
    # Two different values are refused like two Authorization headers: a second one is planted
    # (by a sibling subdomain, for a longer path, so the browser sends it first), and taking
    # either would let someone else's token speak for the user.
    found: bytes | None = None
    for header in headers:
        if header.find(wanted) < 0:
            continue
        for pair in header.split(b";"):
            name, sep, value = pair.partition(b"=")
            # RFC 6265 §5.2 trims SP and HTAB only, as the header policy does when it drops the
            # gateway's cookies: both must see the same cookie, or one could slip past the other.
            if sep and name.strip(b" \t") == wanted:
                value = value.strip(b" \t")
                if len(value) >= 2 and value[0] == value[-1] == 0x22:  # a quoted cookie value
                    value = value[1:-1]
                if not value:
                    continue  # an empty one carries nothing (a cleared cookie's leftover)
                if found is not None and value != found:
                    raise InvalidRequest("More than one access cookie")
                found = value
    if not found:
        return None
    return found.decode("latin-1")
