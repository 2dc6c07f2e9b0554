"""The gateway's cookies: the refresh token and, when configured, the access token.

Their attributes, for users: docs/behaviour.md#refresh-tokens-and-cookies.

Security reasoning:

- ``HttpOnly``: page scripts (and so an XSS) can never read either token.
- ``SameSite=Strict`` (or ``Lax`` when configured): the browser does not attach the cookie to
  requests started by other sites, the first line against CSRF (``proxy/origins.py`` is the second).
- ``Path=/auth`` for the refresh cookie: it travels only to the token endpoints, never to the
  APIs behind the gateway (which also never see it, see ``headers.py``).
- ``Secure`` whenever ``public_url`` is https, so the token never crosses plain http.
- ``Max-Age`` is the session's remaining life: the browser drops the cookie when it is useless.
- Clearing repeats the name, ``Path`` and flags the cookie was set with, or the browser would
  keep the original.

Reading sees every cookie of that name in the ``Cookie`` header. Browsers send the one with the
longest matching path first, so a cookie planted for a shorter path by a sibling subdomain would
never shadow ours. One planted for a longer path (``/auth/refresh``) does, and the
browser gives no way to tell them apart. So a refresh presenting two different values ends
them all (401) rather than sign the user into whichever session came first, and logout revokes
the session of *every* refresh cookie presented (``read_cookies``), so a planted cookie cannot
keep the real session alive behind a logout that looked successful. ``__Host-`` names stop
the planting itself (docs/behaviour.md#several-cookies-of-one-name).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.config import TokensConfig
from gateway.tokenservice.sessions import Grant

__all__ = ["SessionCookies", "read_cookies"]

_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
# Cookie paths that path-match /auth/refresh (RFC 6265 §5.1.4): where a stale refresh cookie
# that still reaches the endpoint can live.
_REFRESH_REACHING_PATHS = ("/", "/auth", "/auth/", "/auth/refresh")


class SessionCookies:
    """``Set-Cookie`` values for one configuration, with the attributes computed once."""

    def __init__(self, tokens: TokensConfig, *, secure: bool) -> None:
        cookie = tokens.cookie
        flags = f"HttpOnly; SameSite={cookie.same_site.capitalize()}"
        if secure:
            flags += "; Secure"
        self.refresh_name = cookie.name
        self._flags = flags
        self._refresh_attributes = f"Path={cookie.path}; {flags}"
        # A __Host- cookie can only live at "/": the browser would ignore the others.
        self._other_paths = (
            ()
            if cookie.name.lower().startswith("__host-")
            else tuple(p for p in _REFRESH_REACHING_PATHS if p != cookie.path)
        )
        self.access_name = tokens.access_cookie.name if tokens.access_cookie else None
        self._access_attributes = f"Path=/; {flags}"

    def refresh(self, token: str, max_age: int) -> str:
        """Set the refresh cookie for ``max_age`` seconds."""
        return f"{self.refresh_name}={token}; Max-Age={max_age}; {self._refresh_attributes}"

    def access(self, token: str, max_age: int) -> str | None:
        """Set the access cookie, or None when ``tokens.access_cookie`` is not configured."""
        if self.access_name is None:
            return None
        return f"{self.access_name}={token}; Max-Age={max_age}; {self._access_attributes}"

    def granted(self, grant: Grant) -> list[str]:
        """The cookies a login or refresh sets: the refresh token, and the access token."""
        values = []
        if grant.refresh_token is not None:
            values.append(self.refresh(grant.refresh_token, grant.refresh_max_age))
        access = self.access(grant.access_token, grant.expires_in)
        if access is not None:
            values.append(access)
        return values

    def cleared(self) -> list[str]:
        """Expire the refresh cookie, and the access cookie when configured.

        The refresh cookie is expired on every path that reaches the refresh endpoint too: one
        left there by an earlier ``tokens.cookie.path`` would otherwise make every refresh
        ambiguous (two values) until it expired. Its own path comes last, for clients that
        keep only the last ``Set-Cookie`` of a name."""
        stale = [
            f"{self.refresh_name}=; Max-Age=0; Expires={_EPOCH}; Path={path}; {self._flags}"
            for path in self._other_paths
        ]
        values = [
            *stale,
            f"{self.refresh_name}=; Max-Age=0; Expires={_EPOCH}; {self._refresh_attributes}",
        ]
        if self.access_name is not None:
            values.append(
                f"{self.access_name}=; Max-Age=0; Expires={_EPOCH}; {self._access_attributes}"
            )
        return values


def read_cookies(headers: Iterable[str], name: str, *, limit: int) -> list[str]:
    """The distinct non-empty values of the cookies called ``name``, the first ``limit``."""
    values: list[str] = []
    for value in _values(headers, name):
        if value and value not in values:
            values.append(value)
            if len(values) == limit:
                break
    return values


def _values(headers: Iterable[str], name: str) -> Iterator[str]:
    for header in headers:
        if name not in header:
            continue
        for pair in header.split(";"):
            key, sep, value = pair.partition("=")
            if sep and key.strip(" \t") == name:  # SP and HTAB only (RFC 6265 §5.2)
                value = value.strip(" \t")
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                yield value
