"""``gateway explain METHOD PATH [--token T]``: what the gateway would do with a request, and why.

Operators debug a 401 or 403 with this instead of reading logs: it names the route and the
reason it won, the normalised path and the full upstream URL, and whether the token would pass,
down to the exact reason (expired by how long, which scope is missing, which claim differs).
The token itself is never printed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import httpx

from gateway.auth.errors import Failure, TokenError
from gateway.auth.jwks import JwksSource
from gateway.auth.keys import KeyRing
from gateway.auth.verifier import scopes_of
from gateway.config import Config, is_reserved
from gateway.proxy.access import RouteAccess
from gateway.proxy.paths import PathError, normalise_path
from gateway.proxy.routing import MethodNotAllowed, RouteTable
from gateway.proxy.runtime import build_verifier


def _ago(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _unverified_payload(token: str) -> dict[str, Any]:
    try:
        segment = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _detail(error: TokenError, claims: Mapping[str, Any], config: Config, now: float) -> str:
    """The exact reason, with the numbers an operator needs."""
    failure = error.failure
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    if failure is Failure.EXPIRED and isinstance(exp, int | float):
        return f"expired {_ago(now - exp)} ago (exp {exp:.0f})"
    if failure is Failure.NOT_YET_VALID and isinstance(nbf, int | float):
        return f"not valid for another {_ago(nbf - now)} (nbf {nbf:.0f})"
    if failure is Failure.ISSUED_IN_FUTURE and isinstance(iat, int | float):
        return f"issued {_ago(iat - now)} in the future (iat {iat:.0f})"
    if failure is Failure.UNKNOWN_ISSUER:
        trusted = [config.tokens.issuer, *(t.issuer for t in config.trusted_issuers)]
        return f"issuer {claims.get('iss')!r} is not one of {trusted}"
    if failure is Failure.WRONG_AUDIENCE:
        return f"audience {claims.get('aud')!r} does not include the expected one"
    return error.description


_SSO_STEPS = {
    "start": "starts single sign-on: 302 to the provider's authorization endpoint",
    "callback": "the provider's redirect back: checks state, exchanges the code, starts a session",
    "backchannel-logout": "OIDC back-channel logout: a logout_token ends that provider session",
}


def _sso(config: Config, path: str) -> list[str]:
    """What a single sign-on path does, and with which provider."""
    parts = path.split("/")
    if len(parts) != 5 or parts[1:3] != ["auth", "oidc"]:
        return []
    name, step = parts[3], parts[4]
    provider = next((p for p in config.login.providers if p.name == name), None)
    if provider is None:
        known = ", ".join(p.name for p in config.login.providers) or "none configured"
        return [f"sign-in provider: {name!r} is not configured (known: {known}): 404 not_found"]
    if step not in _SSO_STEPS or (step == "backchannel-logout" and not provider.backchannel_logout):
        return [f"sign-in provider {name}: no such endpoint: 404 not_found"]
    secret = "client_secret_basic" if provider.client_secret else "public client (PKCE only)"
    return [
        f"sign-in provider {name} (line {provider.line}): issuer {provider.issuer}, "
        f"client_id {provider.client_id}, {secret}",
        f"endpoint: {_SSO_STEPS[step]}",
    ]


async def explain(
    config: Config, method: str, raw_path: str, token: str | None, *, now: float
) -> list[str]:
    """The lines ``gateway explain`` prints."""
    method = method.upper()
    path_only, _, query = raw_path.partition("?")
    try:
        path = normalise_path(path_only.encode(), allow_params=config.server.allow_path_params)
    except PathError as exc:
        return [f"refused: 400 invalid_request: {exc}"]
    lines = [f"normalised path: {path}"]
    if is_reserved(path):
        return [*lines, "route: the gateway's own token service (not proxied)", *_sso(config, path)]
    table = RouteTable(config.routes)
    match = table.match(method, path)
    if match is None:
        return [*lines, f"no route: no route's path is a prefix of {path}: 404 not_found"]
    if isinstance(match, MethodNotAllowed):
        return [
            *lines,
            f"no route for {method}: the matching path allows {', '.join(match.allow)}: "
            "405 method_not_allowed",
        ]
    route = match.route
    shorter = [
        r.path
        for r in config.routes
        if r.path != route.path
        and (path == r.path or path.startswith(r.path.rstrip("/") + "/") or r.path == "/")
    ]
    why = f"longest prefix on a segment boundary: {route.path}"
    if shorter:
        why += f" (also matched, shorter: {', '.join(sorted(set(shorter)))})"
    lines.append(f"route: {route.name} (line {route.line}) — {why}")
    suffix = match.upstream_path + (f"?{query}" if query else "")
    for target in route.upstreams:
        lines.append(f"upstream: {target}{suffix}")
    requirement: str = route.auth
    if route.scopes:
        requirement += f", scopes {' '.join(route.scopes)}"
    if route.claims:
        requirement += ", claims " + ", ".join(f"{k}={v!r}" for k, v in route.claims)
    lines.append(f"auth: {requirement}")
    if route.auth == "public":
        return [*lines, "token: not needed (public route); passes"]
    if token is None:
        outcome = (
            "no token: 401 unauthorized"
            if route.auth == "required"
            else "no token: forwarded anonymously"
        )
        return [*lines, outcome]
    lines.append(
        await _token_verdict(config, route_access=RouteAccess.compile(route), token=token, now=now)
    )
    return lines


async def _token_verdict(
    config: Config, *, route_access: RouteAccess, token: str, now: float
) -> str:
    claims = _unverified_payload(token)
    async with httpx.AsyncClient(timeout=5.0) as http:
        sources: dict[str, JwksSource] = {}
        for trusted in config.trusted_issuers:
            if trusted.jwks_file is not None:
                sources[trusted.issuer] = JwksSource.from_file(trusted.issuer, trusted.jwks_file)
            else:
                assert trusted.jwks_uri is not None
                source = JwksSource.from_uri(trusted.issuer, trusted.jwks_uri, http)
                await source.refresh()
                sources[trusted.issuer] = source
        keyring = KeyRing.load(config.tokens.keys, config.tokens.algorithm)
        verifier = build_verifier(config, keyring, sources, None)
        try:
            verified = await verifier.verify(token)
        except TokenError as exc:
            return f"token: refused, 401 invalid_token: {_detail(exc, claims, config, now)}"
    route = route_access.route
    missing = sorted(set(route.scopes) - scopes_of(verified))
    if missing:
        return f"token: refused, 403 insufficient_scope: missing {' '.join(missing)}"
    for name, expected in route.claims:
        if verified.get(name) != expected:
            return (
                f"token: refused, 403 forbidden: claim {name} is {verified.get(name)!r}, "
                f"the route requires {expected!r}"
            )
    sub = verified.get("sub")
    return f"token: passes (sub {sub!r}; revocation is checked only by a running gateway)"
