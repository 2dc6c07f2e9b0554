"""``/auth/verify``: the gateway's decision for another proxy that keeps the data path.

For users: docs/forward-auth.md. nginx ``auth_request``, Traefik ``ForwardAuth``, Caddy
``forward_auth`` and Envoy ``ext_authz`` ask before they forward a request; the answer is the one
a proxied request would get, decided by the same stages (``stages.py``): the path normalised by
``paths.normalise_path``, the route chosen by ``choose_route``, the token judged by ``authorise``.
Nothing about routes or tokens is decided here.

Security reasoning:

- The original request is named by headers, which anyone can send. They are believed only from a
  peer in ``server.trusted_proxies``; any other peer gets 403 before a header is read. Otherwise
  a caller could ask about any URI, and collect identity assertions meant for upstreams.
- Exactly one method and one URI, both in one convention (``X-Forwarded-Method`` and
  ``X-Forwarded-Uri``, or ``X-Original-Method`` and ``X-Original-URI``): a header sent twice, or
  headers of both conventions, are refused with 400. A proxy that appends instead of replacing,
  or passes on a client's header of the other convention, must not let the client choose which
  one is judged (the confusion behind oauth2-proxy's CVE-2026-40575).
- The URI must be a path (``/...``, with its query): an absolute URI, an authority or ``*`` is
  refused rather than guessed at. The path is then refused or normalised exactly as a proxied
  one (encoded ``/``, backslash, ``;``, dot segments), so the decision is about the resource
  the upstream will serve, never a more lenient neighbour of it.
- The token is the verify request's own (its ``Authorization`` header or access cookie, which
  the proxies copy from the original request), never one named in the URI's query.
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import quote

from gateway.observability import AccessRecord
from gateway.proxy.access import Denial
from gateway.proxy.answers import Allowed, Answer, PreflightAllowed, Refusal
from gateway.proxy.paths import PathError, normalise_path
from gateway.proxy.runtime import Runtime
from gateway.proxy.stages import (
    RequestHead,
    answer_preflight,
    authorise,
    choose_route,
    sends_to_sign_in,
)

__all__ = ["VERIFY_PATH", "verify"]

VERIFY_PATH = "/auth/verify"
_CONVENTIONS = (
    (b"x-forwarded-method", b"x-forwarded-uri"),  # Traefik, Caddy, Envoy
    (b"x-original-method", b"x-original-uri"),  # nginx, the nginx ingress controller
)
_NAMES = frozenset(name for pair in _CONVENTIONS for name in pair)
_METHOD = re.compile(rb"[A-Z][A-Z_-]{0,31}")
_UNTRUSTED = Refusal(403, "Only a trusted proxy may ask for decisions", "forbidden")
_NOT_NAMED = Refusal(
    400,
    "Name the original request in X-Forwarded-Method and X-Forwarded-Uri, "
    "or X-Original-Method and X-Original-URI",
)
_AMBIGUOUS = Refusal(400, "The original request is named more than once")
_BAD_METHOD = Refusal(400, "The original method is not an HTTP method")
_NOT_A_PATH = Refusal(400, "The original URI must be a path starting with /")


async def verify(rt: Runtime, head: RequestHead, peer: str, record: AccessRecord) -> Answer:
    """The decision on the request the headers name: 200 with the identity, or its refusal."""
    record.route = "auth-verify"
    if not rt.policy.is_trusted(peer):
        return _UNTRUSTED
    original = _original_request(head.headers)
    if isinstance(original, Refusal):
        return original
    method, uri = original
    raw_path, _, query = uri.partition(b"?")
    try:
        path = normalise_path(raw_path, allow_params=rt.config.server.allow_path_params)
    except PathError as exc:
        return Refusal(400, str(exc).capitalize())
    record.path = path[:2048]

    preflight = answer_preflight(head, method, rt.cors)
    if isinstance(preflight, PreflightAllowed):
        return Allowed(())  # the upstream answers it, as the gateway would: no token needed
    if preflight is not None:
        return preflight
    match = choose_route(rt.table, method, path)
    if isinstance(match, Refusal):
        return match
    route = match.route
    decision = await authorise(rt, route, head, method, query, record)
    if isinstance(decision, Refusal):
        return decision
    if isinstance(decision, Denial):
        refusal = Refusal.of(decision)
        if sends_to_sign_in(rt, head, method, decision):
            # The proxy cannot be told to redirect, but it can copy Location and act on a 401.
            target = path + ("?" + query.decode("latin-1") if query else "")
            location = f"{rt.config.server.public_url}/auth/login?next={quote(target, safe='')}"
            refusal = replace(refusal, headers=(*refusal.headers, (b"location", location.encode())))
        return refusal
    return Allowed(decision)


def _original_request(headers: list[tuple[bytes, bytes]]) -> tuple[str, bytes] | Refusal:
    """The original method and URI, from exactly one header of each, of one convention."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in _NAMES:
            if name in found:
                return _AMBIGUOUS
            found[name] = value
    named = [pair for pair in _CONVENTIONS if pair[0] in found or pair[1] in found]
    if len(named) > 1:
        return _AMBIGUOUS
    if not named or named[0][0] not in found or named[0][1] not in found:
        return _NOT_NAMED
    method_name, uri_name = named[0]
    method, uri = found[method_name].strip(), found[uri_name].strip()
    if not _METHOD.fullmatch(method):
        return _BAD_METHOD
    if not uri.startswith(b"/"):
        return _NOT_A_PATH
    return method.decode("ascii"), uri
