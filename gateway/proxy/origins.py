"""Cross-site request checks (docs/behaviour.md#cross-site-requests): login and session CSRF.

The refresh and logout endpoints act on a cookie the browser attaches by itself, and the login
endpoint sets one (login CSRF signs a victim into the attacker's account). ``SameSite`` already
keeps the cookie off most cross-site requests; these checks refuse the request itself:

- ``Origin``, when present, must be the gateway's own (``public_url``) or a configured CORS
  origin. ``Origin: null`` (sandboxed frames, ``file:`` pages, some redirects) is refused: it
  cannot be told apart from an attacker's page. So are several ``Origin`` headers.
- ``Sec-Fetch-Site: cross-site`` (sent by every current browser, and not settable by page
  scripts) is refused unless the ``Origin`` is a CORS origin, which is cross-site by definition.
- A request with neither header (curl, a server-side client) is not a browser acting on a
  victim's behalf and is let through.

Origins are compared case-insensitively, as serialised by browsers (no path, no default port).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["OriginCheck"]


class OriginCheck:
    """Decides whether a browser request to a token endpoint may proceed."""

    def __init__(self, public_origin: str, cors_origins: Iterable[str] = ()) -> None:
        self._own = public_origin.lower()
        self._cors = frozenset(origin.lower().rstrip("/") for origin in cors_origins)

    def refusal(self, origins: Sequence[str], fetch_sites: Sequence[str] = ()) -> str | None:
        """Why the request is refused as cross-site, or None when it may proceed."""
        if len(origins) > 1:
            return "More than one Origin header"
        origin = origins[0].strip().lower() if origins else None
        is_cors = origin is not None and origin in self._cors
        if origin is not None and origin != self._own and not is_cors:
            return "Cross-origin requests are not allowed here"
        cross_site = any(site.strip().lower() == "cross-site" for site in fetch_sites)
        if cross_site and not is_cors:
            return "Cross-site requests are not allowed here"
        return None
