"""One sign-in through a provider: its secrets, and the cookie that binds them to the browser.

Security reasoning:

- ``state`` (256 bits) ties the provider's redirect back to the browser that started it: the
  callback only proceeds when the browser holds the flow cookie named after that ``state``
  (login CSRF, RFC 9700 4.7). The cookie is named per flow (``gw_oidc_`` and a hash of the
  state), so two sign-ins in two tabs each keep their own.
- The cookie carries the PKCE verifier (RFC 7636, S256) and the ``nonce``: without both, a code
  or an ID token stolen from the redirect is worth nothing. It is HttpOnly, ``SameSite=Lax``
  (the redirect back is a cross-site top-level navigation: Strict would withhold it), scoped to
  the provider's callback path, lives 10 minutes, and is sealed with an HMAC under a secret
  derived from the gateway's signing keys, so a planted cookie cannot choose the verifier,
  nonce or ``next``.
- A flow completes once: the callback clears the cookie, and the store counts each ``state``
  (``RefreshStore.hit``), so a replayed callback is refused on every replica even while the
  cookie is still in a browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

__all__ = ["FLOW_TTL", "Flow", "FlowCookies", "FlowError"]

FLOW_TTL = 600  # seconds a sign-in may take at the provider
_COOKIE_PREFIX = "gw_oidc_"
_MAX_COOKIE = 4096


class FlowError(Exception):
    """The callback cannot be tied to a flow this browser started (400 ``invalid_request``)."""


@dataclass(frozen=True, slots=True)
class Flow:
    """The secrets of one sign-in, kept in the browser's flow cookie."""

    provider: str
    state: str
    nonce: str
    verifier: str
    next_path: str
    expires_at: float

    @classmethod
    def begin(cls, provider: str, next_path: str, *, now: float) -> Flow:
        return cls(
            provider=provider,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),  # 64 characters, within RFC 7636's 43-128
            next_path=next_path,
            expires_at=now + FLOW_TTL,
        )

    @property
    def challenge(self) -> str:
        """The PKCE S256 challenge of ``verifier``."""
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def authorization_url(
        self, endpoint: str, *, client_id: str, redirect_uri: str, scopes: tuple[str, ...]
    ) -> str:
        """Where the browser is sent: the provider's authorization endpoint with this flow."""
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(scopes),
                "state": self.state,
                "nonce": self.nonce,
                "code_challenge": self.challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def cookie_name(state: str) -> str:
    """The flow cookie's name for ``state``: one cookie per flow, so tabs do not collide."""
    return _COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]


class FlowCookies:
    """Seals a ``Flow`` into its cookie and opens it again at the callback."""

    def __init__(
        self, secret: bytes, *, secure: bool, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._flags = "HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        self._clock = clock

    def _path(self, provider: str) -> str:
        return f"/auth/oidc/{provider}/callback"

    def _mac(self, payload: bytes) -> str:
        digest = hmac.new(self._secret, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def set(self, flow: Flow) -> str:
        """The ``Set-Cookie`` value that starts ``flow`` in this browser."""
        fields = [flow.provider, flow.state, flow.nonce, flow.verifier, flow.next_path]
        payload = json.dumps([*fields, flow.expires_at], separators=(",", ":")).encode()
        value = base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")
        return (
            f"{cookie_name(flow.state)}={value}.{self._mac(payload)}; Max-Age={FLOW_TTL}; "
            f"Path={self._path(flow.provider)}; {self._flags}"
        )

    def clear(self, provider: str, state: str) -> str:
        """Expire the flow cookie of ``state``."""
        return (
            f"{cookie_name(state)}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; "
            f"Path={self._path(provider)}; {self._flags}"
        )

    def open(self, provider: str, state: str | None, values: list[str]) -> Flow:
        """The flow this browser started with ``state`` (``values``: its cookies of that name).

        ``FlowError`` when there is no such cookie, it was not sealed by this gateway, it
        names another state or provider, or it has expired."""
        if not state:
            raise FlowError("the provider's answer has no state")
        for value in values[:4]:
            flow = self._unseal(value)
            if (
                flow is not None
                # Bytes: compare_digest raises TypeError on a str that is not ASCII.
                and hmac.compare_digest(flow.state.encode(), state.encode())
                and flow.provider == provider
            ):
                if flow.expires_at <= self._clock():
                    raise FlowError("the sign-in took too long; start again")
                return flow
        raise FlowError("this sign-in was not started in this browser, or is already complete")

    def _unseal(self, value: str) -> Flow | None:
        if len(value) > _MAX_COOKIE:
            return None
        encoded, _, mac = value.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError:
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        try:
            provider, state, nonce, verifier, next_path, expires_at = json.loads(payload)
        except (ValueError, TypeError):
            return None
        return Flow(provider, state, nonce, verifier, next_path, float(expires_at))
