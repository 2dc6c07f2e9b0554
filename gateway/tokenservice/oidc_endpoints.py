"""Single sign-on endpoints: ``/auth/oidc/{provider}/start``, ``/callback`` and
``/backchannel-logout`` (Starlette).

What each answers, for users: docs/behaviour.md#single-sign-on.

The order of the callback's checks is the security argument: the flow cookie must match
``state`` (else 400, nothing else is looked at), the state must not have been used before on
any replica, the provider's own ``iss`` parameter (RFC 9207, when sent) must be its issuer, then
the code is exchanged (``client_secret_basic`` when a secret is configured, always the PKCE
verifier), the ID token validated (``oidc_tokens.py``), ``require`` checked, and only then a
session started, by the very ``SessionService`` a password login uses. The provider's tokens go
no further than this module: the browser gets the gateway's cookies only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.auth.issuer import TokenIssuer
from gateway.auth.jwks import read_capped
from gateway.auth.keys import KeyRing
from gateway.auth.revocation import RevocationSet
from gateway.config import Config, OidcProviderConfig
from gateway.observability import STORE_ERRORS
from gateway.store import RefreshStore, StoreError
from gateway.store.session_links import link_key
from gateway.tokenservice.cookies import SessionCookies, read_cookies
from gateway.tokenservice.endpoints import NO_STORE, error
from gateway.tokenservice.login_form import BadForm, read_body, urlencoded_fields
from gateway.tokenservice.oidc_flow import FLOW_TTL, Flow, FlowCookies, FlowError, cookie_name
from gateway.tokenservice.oidc_identity import IdentityError, RequirementFailed, identity_from
from gateway.tokenservice.oidc_provider import OidcProvider
from gateway.tokenservice.oidc_tokens import OidcTokenError, logout_session, validate
from gateway.tokenservice.pages import PAGE_HEADERS, render_page, safe_next
from gateway.tokenservice.sessions import SessionService

__all__ = ["OidcEndpoints"]

log = logging.getLogger(__name__)

MAX_TOKEN_RESPONSE = 256 * 1024
MAX_LOGOUT_BODY = 64 * 1024


class _Failed(Exception):
    """A sign-in that ends on the sign-in page with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class _State:
    config: Config
    sessions: SessionService
    cookies: SessionCookies
    flows: FlowCookies
    providers: dict[str, OidcProvider]


class OidcEndpoints:
    """The providers of the configuration, discovered in the background, and their endpoints."""

    def __init__(self) -> None:
        self._state: _State | None = None
        self._deps: tuple[RefreshStore, httpx.AsyncClient, RevocationSet] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.routes = [
            Route("/auth/oidc/{provider}/start", self.start_flow, methods=["GET", "HEAD"]),
            Route("/auth/oidc/{provider}/callback", self.callback, methods=["GET"]),
            Route("/auth/oidc/{provider}/backchannel-logout", self.backchannel, methods=["POST"]),
        ]

    def start(
        self,
        config: Config,
        keyring: KeyRing,
        *,
        store: RefreshStore,
        http: httpx.AsyncClient,
        revoked: RevocationSet,
    ) -> None:
        """Begin discovering every provider (in the background) and serve their endpoints."""
        self._deps = (store, http, revoked)
        self.reconfigure(config, keyring)

    def reconfigure(self, config: Config, keyring: KeyRing) -> None:
        """Swap in the providers of ``config`` (a reload hook); unchanged ones are kept."""
        if self._deps is None:
            return
        store, http, _ = self._deps
        old = self._state.providers if self._state else {}
        providers: dict[str, OidcProvider] = {}
        for settings in config.login.providers:
            kept = old.get(settings.name)
            if kept is not None and kept.config == settings:
                providers[settings.name] = kept
                continue
            providers[settings.name] = OidcProvider(settings, http, leeway=config.tokens.leeway)
            task = self._tasks.pop(settings.name, None)
            if task is not None:
                task.cancel()
            self._tasks[settings.name] = asyncio.create_task(providers[settings.name].run())
        for name in set(self._tasks) - set(providers):
            self._tasks.pop(name).cancel()
        tokens = config.tokens
        issuer = TokenIssuer(
            keyring, issuer=tokens.issuer, audience=tokens.audience, access_ttl=tokens.access_ttl
        )
        self._state = _State(
            config=config,
            sessions=SessionService(store, issuer, tokens),
            cookies=SessionCookies(tokens, secure=config.server.secure),
            flows=FlowCookies(
                keyring.derive_secret(b"gateway oidc flow cookie"), secure=config.server.secure
            ),
            providers=providers,
        )

    def readiness(self) -> list[str]:
        """The providers whose discovery document was never fetched."""
        if self._state is None:
            return []
        return [
            f"OIDC provider {name} not discovered ({p.last_error or 'fetching'})"
            for name, p in self._state.providers.items()
            if not p.ready
        ]

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    # -- endpoints ---------------------------------------------------------------------------

    async def start_flow(self, request: Request) -> Response:
        state, provider = self._provider(request)
        if provider is None or state is None:
            return error(404, "not_found", "No such sign-in provider")
        if provider.discovery is None:
            return self._page(state, 503, f"{provider.config.name} is unreachable; try again")
        next_path = safe_next(request.query_params.get("next")) or "/"
        flow = Flow.begin(provider.config.name, next_path, now=time.time())
        location = flow.authorization_url(
            provider.discovery.authorization_endpoint,
            client_id=provider.config.client_id,
            redirect_uri=_redirect_uri(state.config, provider.config),
            scopes=provider.config.scopes,
        )
        response = RedirectResponse(location, status_code=302, headers=NO_STORE)
        response.headers.append("set-cookie", state.flows.set(flow))
        return response

    async def callback(self, request: Request) -> Response:
        state, provider = self._provider(request)
        if provider is None or state is None:
            return error(404, "not_found", "No such sign-in provider")
        query = request.query_params
        flow_state = query.get("state")
        clear = state.flows.clear(provider.config.name, flow_state) if flow_state else None
        try:
            response = await self._complete(request, state, provider)
        except _Failed as failed:
            response = self._page(state, failed.status, failed.message)
        if clear is not None:  # a flow completes once, whatever its outcome
            response.headers.append("set-cookie", clear)
        return response

    async def _complete(self, request: Request, state: _State, provider: OidcProvider) -> Response:
        query = request.query_params
        flow_state = query.get("state") or ""
        cookies = read_cookies(request.headers.getlist("cookie"), cookie_name(flow_state), limit=4)
        try:
            flow = state.flows.open(provider.config.name, flow_state, cookies)
        except FlowError as exc:
            raise _Failed(400, f"invalid_request: {exc}") from None
        # Only now, for the browser whose flow this is: otherwise anyone could link to this
        # origin's sign-in page with words of their choosing.
        if query.get("error"):
            # What the provider said (access_denied, login_required...), shortened; the page
            # escapes it.
            said = (query.get("error_description") or "")[:200]
            raise _Failed(
                401,
                f"{provider.config.name} refused the sign-in: "
                f"{query['error'][:64]}{': ' + said if said else ''}",
            )
        # Before the state is used up: a retry after this 503 still completes.
        discovery, rules = provider.discovery, provider.rules()
        if discovery is None or rules is None:
            raise _Failed(503, f"{provider.config.name} is unreachable; try again")
        try:
            used = await state.sessions.store.hit(
                key="oidc-state:" + hashlib.sha256(flow.state.encode()).hexdigest(),
                window=FLOW_TTL + 60,
                now=time.time(),
            )
        except StoreError:
            STORE_ERRORS.labels("login").inc()
            raise _Failed(503, "The session store is unavailable; try again shortly") from None
        if used.hits > 1:
            raise _Failed(400, "invalid_request: this sign-in is already complete")
        iss = query.get("iss")
        if iss is not None and iss != discovery.issuer:
            raise _Failed(400, "invalid_request: the answer came from another issuer")
        code = query.get("code")
        if not code:
            raise _Failed(400, "invalid_request: the provider's answer has no code")
        id_token = await self._exchange(state, provider, code, flow)
        try:
            claims = await validate(id_token, rules, nonce=flow.nonce)
            identity = identity_from(claims, provider.config)
        except (OidcTokenError, IdentityError) as exc:
            log.warning("sign-in through %s refused: %s", provider.config.name, exc)
            raise _Failed(401, f"invalid_grant: {exc}") from None
        except RequirementFailed as exc:
            raise _Failed(403, f"forbidden: {exc}") from None
        try:
            grant = await state.sessions.login(identity)
            links = [link_key(provider.config.name, "sub", str(claims["sub"]))]
            if isinstance(claims.get("sid"), str):
                links.append(link_key(provider.config.name, "sid", claims["sid"]))
            await state.sessions.store.link_session(sid=grant.sid, links=links)
        except StoreError:
            STORE_ERRORS.labels("login").inc()
            raise _Failed(503, "The session store is unavailable; try again shortly") from None
        request.state.sub = grant.sub  # for the access log
        response = RedirectResponse(flow.next_path, status_code=303, headers=NO_STORE)
        for value in state.cookies.granted(grant):
            response.headers.append("set-cookie", value)
        return response

    async def _exchange(self, state: _State, provider: OidcProvider, code: str, flow: Flow) -> str:
        """The ID token the provider gives for ``code``; ``_Failed`` (401) otherwise."""
        assert provider.discovery is not None
        settings = provider.config
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": _redirect_uri(state.config, settings),
            "code_verifier": flow.verifier,
        }
        headers = {"accept": "application/json"}
        auth: httpx.Auth | None = None
        if settings.client_secret is None:
            form["client_id"] = settings.client_id
        else:  # client_secret_basic: both parts form-encoded first (RFC 6749 2.3.1)
            auth = httpx.BasicAuth(
                quote(settings.client_id, safe=""), quote(settings.client_secret, safe="")
            )
        try:
            status, body = await _post_form(
                provider.http, provider.discovery.token_endpoint, form, headers, auth
            )
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("token endpoint of %s failed: %s", settings.name, type(exc).__name__)
            raise _Failed(401, "invalid_grant: the provider's token endpoint failed") from None
        if status != 200 or not isinstance(body, dict):
            said = body.get("error") if isinstance(body, dict) else None
            log.warning("code exchange at %s refused: %s", settings.name, said or status)
            raise _Failed(401, "invalid_grant: the provider refused the code")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise _Failed(401, "invalid_grant: the provider gave no ID token")
        return id_token

    async def backchannel(self, request: Request) -> Response:
        state, provider = self._provider(request)
        if provider is None or state is None or not provider.config.backchannel_logout:
            return error(404, "not_found", "No such back-channel logout endpoint")
        rules = provider.rules()
        if rules is None:
            return error(503, "temporarily_unavailable", "The provider is not discovered yet")
        try:
            token = urlencoded_fields(await read_body(request, MAX_LOGOUT_BODY)).get("logout_token")
        except BadForm as exc:
            return error(exc.status, exc.code, exc.description)
        if not isinstance(token, str):
            return error(400, "invalid_request", "Send exactly one logout_token as a form")
        try:
            claims = await validate(token, rules, nonce=None, logout=True)
        except OidcTokenError as exc:
            log.warning("back-channel logout from %s refused: %s", provider.config.name, exc)
            return error(400, "invalid_request", f"The logout token is invalid: {exc}")
        session = logout_session(claims)
        name = provider.config.name
        link = (
            link_key(name, "sid", session.sid)
            if session.sid
            else link_key(name, "sub", session.sub or "")
        )
        assert self._deps is not None
        store, _, revoked = self._deps
        try:
            sids = await store.revoke_linked(link=link, now=time.time())
        except StoreError:
            STORE_ERRORS.labels("logout").inc()
            return error(503, "store_unavailable", "The session store is unavailable")
        now = time.time()
        for sid in sids:
            revoked.add(sid, now)
        log.info("back-channel logout from %s ended %d session(s)", name, len(sids))
        return Response(status_code=200, headers=NO_STORE)

    # -- the steps ---------------------------------------------------------------------------

    def _provider(self, request: Request) -> tuple[_State | None, OidcProvider | None]:
        state = self._state
        if state is None:
            return None, None
        return state, state.providers.get(request.path_params["provider"])

    def _page(
        self, state: _State, status: int, message: str, next_path: str | None = None
    ) -> HTMLResponse:
        page = render_page(
            next_path=next_path,
            message=message,
            providers=tuple(state.providers),
            password_form=state.config.login.password_form,
        )
        return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)


async def _post_form(
    http: httpx.AsyncClient,
    url: str,
    form: dict[str, str],
    headers: dict[str, str],
    auth: httpx.Auth | None,
) -> tuple[int, Any]:
    """POST ``form`` to ``url``; the status and the JSON answer (at most 256 KiB read)."""
    async with http.stream(
        "POST",
        url,
        data=form,
        headers=headers,
        auth=auth or httpx.USE_CLIENT_DEFAULT,
        follow_redirects=False,
    ) as response:
        body = await read_capped(response, MAX_TOKEN_RESPONSE)
    if body is None:
        raise ValueError("the token response is too large")
    return response.status_code, json.loads(body) if body else None


def _redirect_uri(config: Config, provider: OidcProviderConfig) -> str:
    return f"{config.server.public_url}/auth/oidc/{provider.name}/callback"
