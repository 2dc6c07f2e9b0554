"""The token service's endpoints: login, refresh, logout and the sign-in page.

What each answers, for users: docs/behaviour.md#endpoints.

Every answer here is built by this module: JSON errors in the gateway's shape (``error``,
``error_description``), ``Cache-Control: no-store`` on every one of them, cookies from
``cookies.py``. The order of checks on a POST is the security argument: method, then the
cross-site check (``proxy/origins.py``), then the body (``login_form.py`` reads at most
16 KiB), then the login lockout, and only then is a password hashed or the store asked to rotate.

Nothing secret is logged or echoed (no password, token or cookie value); an unexpected
exception is logged with its type and stack frames only, never its message.

A form post whose ``Accept`` prefers HTML (the sign-in page) gets HTML back: the page with a
message on failure, ``303`` to its same-origin ``next`` on success; others get JSON.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.auth.issuer import TokenIssuer
from gateway.auth.keys import KeyRing
from gateway.auth.revocation import RevocationSet
from gateway.config import Config
from gateway.http.errors import error_body
from gateway.observability import REFRESHES, REUSE_DETECTIONS, STORE_ERRORS
from gateway.proxy.headers import HeaderPolicy
from gateway.proxy.origins import OriginCheck
from gateway.store import RefreshStore, StoreError
from gateway.tokenservice.cookies import SessionCookies, read_cookies
from gateway.tokenservice.login_form import BadForm, LoginForm, read_login_form, wants_page
from gateway.tokenservice.pages import PAGE_HEADERS, render_page, render_signed_in, safe_next
from gateway.tokenservice.passwords import PasswordCheck
from gateway.tokenservice.sessions import Grant, InvalidGrant, Refused, SessionService
from gateway.tokenservice.throttle import LoginThrottle
from gateway.tokenservice.users import (
    Credentials,
    CredentialsUnavailable,
    UserDirectory,
    credentials_for,
)

__all__ = ["NO_STORE", "TokenEndpoints", "error"]

log = logging.getLogger(__name__)

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
_POST_ONLY = "POST"
# Refresh cookies a logout (or an ambiguous refresh) revokes. A browser sends at most one per
# (domain, path) that reaches the endpoint: 4 paths (/, /auth, /auth/, /auth/<endpoint>) times
# the host and its parent domains, so a dozen or so even with planted ones. Past this the
# request was not made by a browser, and the store is not made to pay for it.
_MAX_REFRESH_COOKIES = 16
_LOGIN_METHODS = "GET, HEAD, POST"
STORE_DOWN = "The session store is unavailable; try again shortly"


class _Refusal(Exception):
    """An answer decided before the endpoint's work is done."""

    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass(frozen=True, slots=True)
class _Service:
    cookies: SessionCookies
    origins: OriginCheck
    headers: HeaderPolicy
    sessions: SessionService
    credentials: Credentials
    throttle: LoginThrottle
    revoked: RevocationSet
    sign_in_url: str
    choices: dict[str, Any]  # the sign-in page's providers and password form


def error(
    status: int, code: str, description: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The gateway's JSON error answer (``gateway.http.errors``), never cached."""
    return Response(
        error_body(code, description),
        status_code=status,
        media_type="application/json",
        headers={**NO_STORE, **(headers or {})},
    )


class Endpoint:
    """An ASGI app around one handler, so that routing passes every method to it."""

    def __init__(self, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._handler(request)
        except _Refusal as refusal:
            response = refusal.response
        except Exception as exc:
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("token endpoint failed: %s\n%s", type(exc).__name__, frames.rstrip())
            response = error(500, "server_error", "The gateway failed to answer")
        await response(scope, receive, send)


class TokenEndpoints:
    """``/auth/login``, ``/auth/refresh``, ``/auth/logout``; they answer 503 until ``start``.

    Everything a request uses is one immutable ``_Service``: ``reconfigure`` (on reload) builds a
    new one and swaps it in, and a request in flight keeps the one it started with.
    """

    def __init__(self) -> None:
        self._service: _Service | None = None
        self._deps: tuple[RefreshStore, httpx.AsyncClient, RevocationSet, PasswordCheck] | None
        self._deps = None
        self._directories: dict[Path, UserDirectory] = {}
        not_found = Endpoint(self.not_found)
        self.routes = [
            Route("/auth/login", Endpoint(self.login)),
            Route("/auth/refresh", Endpoint(self.refresh)),
            Route("/auth/logout", Endpoint(self.logout)),
            Route("/auth", not_found),
            Route("/auth/{rest:path}", not_found),
            Route("/.well-known", not_found),
            Route("/.well-known/{rest:path}", not_found),
        ]

    @property
    def issuer(self) -> TokenIssuer | None:
        """The issuer minting this worker's access tokens (None before ``start``)."""
        return self._service.sessions.issuer if self._service else None

    async def start(
        self,
        config: Config,
        keyring: KeyRing,
        *,
        store: RefreshStore,
        http: httpx.AsyncClient,
        revoked: RevocationSet,
    ) -> None:
        """Build the service on the worker's store, keys and HTTP client."""
        passwords = PasswordCheck()
        self._deps = (store, http, revoked, passwords)
        self.reconfigure(config, keyring)
        assert self._service is not None
        await self._service.credentials.warm()

    def degraded(self) -> list[str]:
        """The inputs that failed to load while their last good state serves."""
        problem = self._service.credentials.problem() if self._service else None
        return [problem] if problem else []

    def reconfigure(self, config: Config, keyring: KeyRing) -> None:
        """Swap in a service built from ``config`` and ``keyring`` (a ``reload`` hook)."""
        if self._deps is None:
            return
        store, http, revoked, passwords = self._deps
        tokens, users = config.tokens, config.users
        issuer = TokenIssuer(
            keyring, issuer=tokens.issuer, audience=tokens.audience, access_ttl=tokens.access_ttl
        )
        cors_origins = config.cors.allow_origins if config.cors else frozenset()
        self._service = _Service(
            cookies=SessionCookies(tokens, secure=config.server.secure),
            origins=OriginCheck(config.server.public_origin, cors_origins),
            headers=HeaderPolicy(config),
            sessions=SessionService(store, issuer, tokens),
            credentials=credentials_for(users, http, passwords, self._directories),
            throttle=LoginThrottle(store, max_failures=users.max_failures, lockout=users.lockout),
            revoked=revoked,
            sign_in_url=config.server.public_url + "/auth/login",
            choices={
                "providers": tuple(p.name for p in config.login.providers),
                "password_form": config.login.password_form,
            },
        )

    # -- endpoints ---------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            next_path = safe_next(request.query_params.get("next"))
            # Only access-cookie sessions are sent here by a navigation, so only they can
            # usefully be resumed from the refresh cookie before the form is needed.
            service = self._service
            silent = service is not None and service.cookies.access_name is not None
            choices = service.choices if service else {}
            return _page(render_page(next_path=next_path, silent_refresh=silent, **choices))
        service = self._admit(request, _LOGIN_METHODS)
        if not service.choices["password_form"]:  # single sign-on only: no users configured
            return error(404, "not_found", "Password sign-in is not configured; use a provider")
        try:
            form = await read_login_form(request)
        except BadForm as exc:
            if wants_page(request):
                page = render_page(message="The sign-in form was incomplete; try again.")
                return _page(page, exc.status)
            return error(exc.status, exc.code, exc.description)
        address = service.headers.client_address(
            request.client.host if request.client else "",
            [value.encode("latin-1") for value in request.headers.getlist("x-forwarded-for")],
        )
        try:
            # Counted before the password is checked, so a burst cannot outrun the count.
            attempt = await service.throttle.attempt(form.username, address)
            if attempt.retry_after is not None:
                return self._locked(form, attempt.retry_after)
            try:
                identity = await service.credentials.authenticate(form.username, form.password)
            except CredentialsUnavailable:
                await service.throttle.not_checked(attempt)
                raise
            if identity is None:
                return self._bad_credentials(form)
            await service.throttle.succeeded(attempt)
            grant = await service.sessions.login(identity)
        except CredentialsUnavailable as exc:
            log.warning("login refused: %s", exc)
            return self._unavailable(form, "The user directory is unavailable; try again shortly")
        except StoreError:
            STORE_ERRORS.labels("login").inc()
            return self._unavailable(form, STORE_DOWN)
        request.state.sub = grant.sub  # for the access log
        if form.html:
            response: Response
            if form.next_path:
                response = RedirectResponse(form.next_path, status_code=303, headers=NO_STORE)
            else:
                response = _page(render_signed_in(grant.sub))
        else:
            response = self._grant(grant)
        _set_cookies(response.headers, service.cookies.granted(grant))
        return response

    async def refresh(self, request: Request) -> Response:
        service = self._admit(request, _POST_ONLY)
        tokens = _refresh_cookies(service, request)
        if len(tokens) > 1:
            # A second one was planted, or left at an earlier cookie path (cookies.py): using
            # either could sign the user into someone else's session. Every session presented
            # ends, as at logout, and the browser starts over from a sign-in.
            REFRESHES.labels("ambiguous").inc()
            refused = error(
                401, "invalid_grant", "More than one refresh cookie was sent; sign in again"
            )
            if not await self._end_sessions(service, tokens):
                refused = error(503, "store_unavailable", STORE_DOWN)
            _set_cookies(refused.headers, service.cookies.cleared())
            return refused
        token = tokens[0] if tokens else None
        try:
            grant = await service.sessions.refresh(token)
        except InvalidGrant as exc:
            REFRESHES.labels(exc.reason.value).inc()
            if exc.reason is Refused.REUSED and exc.sid is not None:
                service.revoked.add(exc.sid, time.time())
                REUSE_DETECTIONS.inc()
                log.warning(
                    "refresh token reuse detected: session %s of %r revoked", exc.sid, exc.sub
                )
            refused = error(
                401, "invalid_grant", "The refresh token is missing, expired or revoked"
            )
            _set_cookies(refused.headers, service.cookies.cleared())
            return refused
        except StoreError:
            REFRESHES.labels("unavailable").inc()
            STORE_ERRORS.labels("refresh").inc()
            return error(503, "store_unavailable", STORE_DOWN)
        REFRESHES.labels("grace" if grant.grace else "rotated").inc()
        request.state.sub = grant.sub  # for the access log
        response = self._grant(grant)
        # In the grace window too: the cookie is the rotation's token (sessions.py).
        _set_cookies(response.headers, service.cookies.granted(grant))
        return response

    async def logout(self, request: Request) -> Response:
        service = self._admit(request, _POST_ONLY)
        # Every refresh cookie presented, not only the first: one planted for a longer path
        # comes first and would leave the real session alive (cookies.py).
        tokens = _refresh_cookies(service, request)
        response: Response = Response(status_code=204, headers=NO_STORE)
        if wants_page(request):  # the signed-in page's button: back to the sign-in page
            response = RedirectResponse("/auth/login", status_code=303, headers=NO_STORE)
        if not await self._end_sessions(service, tokens):
            # The browser forgets its tokens anyway; the caller hears the session may live on.
            response = error(503, "store_unavailable", STORE_DOWN)
            if wants_page(request):
                response = _page(render_page(message=STORE_DOWN), 503)
        _set_cookies(response.headers, service.cookies.cleared())
        return response

    async def _end_sessions(self, service: _Service, tokens: list[str]) -> bool:
        """Revoke the family of each refresh token; False when the store could not be told."""
        for token in tokens:
            try:
                sid = await service.sessions.logout(token)
            except StoreError:
                STORE_ERRORS.labels("logout").inc()
                return False
            if sid is not None:
                service.revoked.add(sid, time.time())
        return True

    async def not_found(self, request: Request) -> Response:
        return error(404, "not_found", "No such endpoint")

    # -- the steps ---------------------------------------------------------------------------

    def _admit(self, request: Request, allow: str) -> _Service:
        """The service, once the method and the request's origin are acceptable."""
        if request.method != "POST":
            refused = error(405, "method_not_allowed", "This endpoint does not allow the method")
            refused.headers["allow"] = allow
            raise _Refusal(refused)
        service = self._service
        if service is None:
            raise _Refusal(error(503, "store_unavailable", "The token service is starting"))
        refusal = service.origins.refusal(
            request.headers.getlist("origin"), request.headers.getlist("sec-fetch-site")
        )
        if refusal is not None:
            if wants_page(request):  # a form posted from another site's page: say where to go
                message = f"{refusal}. Sign in at {service.sign_in_url}."
                raise _Refusal(_page(render_page(message=message), 403))
            raise _Refusal(error(403, "forbidden", refusal))
        return service

    def _grant(self, grant: Grant) -> JSONResponse:
        return JSONResponse(
            {
                "access_token": grant.access_token,
                "token_type": "Bearer",
                "expires_in": grant.expires_in,
            },
            headers=NO_STORE,
        )

    def _bad_credentials(self, form: LoginForm) -> Response:
        if form.html:
            return self._page(form, 401, "Wrong username or password.")
        return error(401, "invalid_credentials", "The username or password is wrong")

    def _locked(self, form: LoginForm, wait: int) -> Response:
        headers = {"retry-after": str(wait)}
        if form.html:
            return self._page(
                form, 429, f"Too many failed sign-ins. Try again in {wait} s.", headers
            )
        return error(429, "rate_limited", "Too many failed logins; try again later", headers)

    def _unavailable(self, form: LoginForm, description: str) -> Response:
        if form.html:
            return self._page(form, 503, description)
        return error(503, "store_unavailable", description)

    def _page(
        self,
        form: LoginForm,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        return _page(render_page(next_path=form.next_path, message=message), status, headers)


def _page(page: str, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(page, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def _refresh_cookies(service: _Service, request: Request) -> list[str]:
    """Every distinct refresh cookie the request carries (a planted one comes first)."""
    return read_cookies(
        request.headers.getlist("cookie"), service.cookies.refresh_name, limit=_MAX_REFRESH_COOKIES
    )


def _set_cookies(headers: MutableHeaders, values: Iterable[str]) -> None:
    for value in values:
        headers.append("set-cookie", value)
