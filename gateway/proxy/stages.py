"""The stages of a request before it is forwarded, each a function that answers or passes on.

The front door (``front_door.py``) runs them in this order, which is the security argument
(docs/architecture.md#the-request-path):

1. ``scan_head``: the headers are read once, into a ``RequestHead`` every later stage reads;
2. ``check_framing``: the size of the head, the transfer coding, one ``Host``, and the path,
   normalised once: what is matched is what is forwarded;
3. ``answer_preflight``: CORS preflights are answered without authentication;
4. (the gateway's own endpoints go to the token service here);
5. ``choose_route``: 404, 405 with ``Allow``, or the route;
6. ``authenticate``: the token against that route, or a browser navigation sent to sign in;
7. ``check_rate_limit`` (routes that have one), then ``check_body``: the declared body size
   against ``max_body``;
8. (forwarding, ``forward.py``).

Each stage returns an ``Answer`` (the request ends there) or what the next stage needs; none
sends anything, so each can be tested on its own.
"""

from __future__ import annotations

import itertools
import os
from urllib.parse import quote

from gateway.auth.errors import InvalidRequest, TokenError
from gateway.auth.extract import extract_token
from gateway.auth.token_cache import CachedToken
from gateway.config import Route
from gateway.observability import AccessRecord
from gateway.proxy.access import NO_TOKEN, Denial, invalid_token
from gateway.proxy.answers import Answer, PreflightAllowed, Refusal, SignInRedirect
from gateway.proxy.cors import CorsPolicy
from gateway.proxy.paths import PathError, normalise_path
from gateway.proxy.ratelimit import RateLimiter
from gateway.proxy.routing import MethodNotAllowed, RouteMatch, RouteTable
from gateway.proxy.runtime import Runtime

__all__ = [
    "ANONYMOUS",
    "MAX_HEADER_BYTES",
    "SAFE_METHODS",
    "BodyPlan",
    "RequestHead",
    "answer_preflight",
    "authenticate",
    "authorise",
    "check_body",
    "check_framing",
    "check_rate_limit",
    "choose_route",
    "new_request_id",
    "scan_head",
    "sends_to_sign_in",
]

MAX_HEADER_BYTES = 32 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What ``authorise`` admits on a public route, or anonymously on an optional one: no identity,
# and no authority that could end.
ANONYMOUS = CachedToken(float("inf"), None, {})

# A random per-process prefix and a counter: unique across workers and restarts, and no
# system call per request (request ids identify, they do not authenticate).
_ID_PREFIX = os.urandom(6).hex().encode()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> bytes:
    # A bytes %-format, not an f-string: compiled, a format spec costs a str.format call.
    return b"%s%010x" % (_ID_PREFIX, next(_ID_COUNTER))


class RequestHead:
    """What one scan of the request's headers found.

    A plain class, not a dataclass: compiled (mypyc), a dataclass keeps the ``__init__`` that
    ``dataclasses`` generates in Python, which cost 4,300 instructions per request."""

    __slots__ = (
        "accept",
        "authorization",
        "chunked",
        "content_length",
        "fetch_sites",
        "forwarded_for",
        "headers",
        "hosts",
        "origin",
        "other_coding",
        "preflight",
        "request_id",
        "several_origins",
        "size",
    )

    def __init__(
        self,
        headers: list[tuple[bytes, bytes]],
        size: int,
        hosts: int,
        request_id: bytes,
        content_length: bytes | None,
        chunked: bool,
        other_coding: bool,
        origin: bytes | None,
        several_origins: list[bytes] | None,
        preflight: bool,
        accept: bytes,
        authorization: bool,
        fetch_sites: list[bytes] | None,
        forwarded_for: list[bytes] | None,
    ) -> None:
        self.headers = headers
        self.size = size  # bytes of the header lines, as the 431 bound counts them
        self.hosts = hosts
        self.request_id = request_id  # the client's, when usable, else a new one
        self.content_length = content_length
        self.chunked = chunked
        self.other_coding = other_coding  # a transfer coding other than chunked
        self.origin = origin  # the one Origin; None when absent or repeated
        self.several_origins = several_origins  # every Origin, when there are several
        self.preflight = preflight  # Access-Control-Request-Method is present
        self.accept = accept
        # An Authorization header is present, whatever its scheme.
        self.authorization = authorization
        self.fetch_sites = fetch_sites
        self.forwarded_for = forwarded_for

    def origins(self) -> list[str]:
        """Every ``Origin`` value, for the cross-site check (which refuses several)."""
        raw = self.several_origins or ((self.origin,) if self.origin is not None else ())
        return [value.decode("latin-1") for value in raw]


def scan_head(headers: list[tuple[bytes, bytes]]) -> RequestHead:
    """Read the headers once; the stages after this never loop over them again."""
    size = hosts = 0
    request_id = content_length = origin = None
    chunked = other_coding = preflight = authorization = False
    several: list[bytes] | None = None
    accept = b""
    fetch_sites: list[bytes] | None = None
    forwarded_for: list[bytes] | None = None
    for name, value in headers:
        size += len(name) + len(value) + 4
        if name == b"host":
            hosts += 1
        elif name == b"x-request-id":
            request_id = value
        elif name == b"content-length":
            content_length = value
        elif name == b"transfer-encoding":
            chunked = True
            other_coding = other_coding or value.strip().lower() != b"chunked"
        elif name == b"origin":
            if origin is not None:  # more than one: kept whole for the cross-site check
                several = [*(several or (origin,)), value]
            origin = value
        elif name == b"access-control-request-method":
            preflight = True
        elif name == b"x-forwarded-for":
            forwarded_for = [*(forwarded_for or ()), value]
        elif name == b"accept":
            accept = value
        elif name == b"authorization":
            authorization = True
        elif name == b"sec-fetch-site":
            fetch_sites = [*fetch_sites, value] if fetch_sites else [value]
    if request_id is None or len(request_id) > 200 or not request_id.isascii():
        request_id = new_request_id()
    if several is not None:
        origin = None  # no CORS answer for a request that names several origins
    return RequestHead(
        headers,
        size,
        hosts,
        request_id,
        content_length,
        chunked,
        other_coding,
        origin,
        several,
        preflight,
        accept,
        authorization,
        fetch_sites,
        forwarded_for,
    )


def check_framing(head: RequestHead, raw_path: bytes, *, allow_params: bool) -> Refusal | str:
    """The normalised path, once the head can be served at all."""
    if head.size > MAX_HEADER_BYTES:
        return Refusal(431, "The request headers are too large", close=True)
    if head.other_coding:
        # The parser removed the chunking and would hand on bytes still gzip- (or otherwise)
        # coded as if plain: refuse, as RFC 9112 §6.1 asks.
        return Refusal(
            501, "Only the chunked transfer coding is supported", "not_implemented", close=True
        )
    if head.hosts != 1:
        return Refusal(400, "The request must carry exactly one Host header")
    try:
        return normalise_path(raw_path, allow_params=allow_params)
    except PathError as exc:
        return Refusal(400, str(exc).capitalize())


def answer_preflight(head: RequestHead, method: str, cors: CorsPolicy) -> Answer | None:
    """The answer to a CORS preflight, or None when this is not one."""
    origin = head.origin
    if not head.preflight or method != "OPTIONS" or origin is None:
        return None
    headers = tuple(cors.preflight(origin))
    if cors.allows(origin):
        return PreflightAllowed(headers)
    return Refusal(403, "This origin is not allowed", "forbidden", headers)


def choose_route(table: RouteTable, method: str, path: str) -> Refusal | RouteMatch:
    """The route of the longest matching prefix that allows ``method``."""
    match = table.match(method, path)
    if match is None:
        return Refusal(404, "No route matches this path")
    if isinstance(match, MethodNotAllowed):
        allow = ((b"allow", ", ".join(match.allow).encode()),)
        return Refusal(405, "This route does not allow the method", headers=allow)
    return match


async def authenticate(
    rt: Runtime,
    route: Route,
    head: RequestHead,
    method: str,
    path: str,
    query: bytes,
    record: AccessRecord,
    offered: str | None = None,
) -> Answer | CachedToken:
    """The admitted token (``ANONYMOUS`` without one), or why the request is refused.

    A browser navigation cannot attach a header: with the access cookie it is sent to sign in
    instead of shown a 401, when it has no token or only a stale cookie one."""
    decision = await authorise(rt, route, head, method, query, record, offered)
    if isinstance(decision, Denial):
        if sends_to_sign_in(rt, head, method, decision):
            return _sign_in(path, query, decision.reason)
        return Refusal.of(decision)
    return decision


def sends_to_sign_in(rt: Runtime, head: RequestHead, method: str, denial: Denial) -> bool:
    """Whether a refused browser navigation is better sent to sign in: it has no token, or only
    a cookie one that failed, and signing in sets the access cookie it will send back."""
    return (
        denial.status == 401
        and rt.access_cookie is not None
        and method == "GET"
        and head.accept.find(b"text/html") >= 0  # not `in`: see paths.normalise_path
        and (denial is NO_TOKEN or not head.authorization)
    )


async def authorise(
    rt: Runtime,
    route: Route,
    head: RequestHead,
    method: str,
    query: bytes,
    record: AccessRecord,
    offered: str | None = None,
) -> CachedToken | Denial | Refusal:
    """The admitted token, whose ``identity`` holds the identity headers (and the assertion),
    ``ANONYMOUS`` without one; or the route's refusal, or a 400.

    ``offered`` is a token a WebSocket handshake carried in ``Sec-WebSocket-Protocol``; with a
    bearer ``Authorization`` header too it is ambiguous (400). A verified token's subject goes
    into ``record``. The access cookie rides along with any request the browser makes,
    including a form post from another site: an unsafe request authenticated by it alone passes
    the same cross-site check as the token endpoints."""
    if route.auth == "public":
        return ANONYMOUS
    try:
        token = extract_token(head.headers, query, rt.access_cookie)
    except InvalidRequest as exc:
        return Refusal(400, exc.description)
    if offered is not None:
        if token is not None and head.authorization:
            return Refusal(400, "A bearer token in both Authorization and Sec-WebSocket-Protocol")
        token = offered
    if token is None:
        return ANONYMOUS if route.auth != "required" else NO_TOKEN
    if (
        not head.authorization
        and method not in SAFE_METHODS
        and (
            refusal := rt.origin_check.refusal(
                head.origins(), [site.decode("latin-1") for site in head.fetch_sites or ()]
            )
        )
    ):
        return Denial(403, "forbidden", refusal, "cross_site")
    try:
        admitted = await rt.verifier.admit(token)
    except TokenError as exc:
        return invalid_token(exc)
    record.sub = admitted.sub
    denial = rt.access[route.name].check(admitted)
    if denial is not None:
        return denial
    if rt.asserter is not None and route.identity_assertion:
        return rt.asserter.admitted(token, route.name, admitted)
    return admitted


def _sign_in(path: str, query: bytes, reason: str) -> SignInRedirect:
    target = path + ("?" + query.decode("latin-1") if query else "")
    return SignInRedirect(("/auth/login?next=" + quote(target, safe="")).encode(), reason)


# What the framing says of the body: whether there is one, and its declared length if any.
BodyPlan = tuple[bool, int | None]


async def check_rate_limit(
    route: Route, record: AccessRecord, limiter: RateLimiter
) -> Refusal | None:
    """429 when the route's ``rate_limit`` is spent for this subject (or client address)."""
    assert route.rate_limit is not None
    key = f"{route.name}:{'sub:' + record.sub if record.sub else 'ip:' + record.client}"
    retry_after = await limiter.hit(key, route.rate_limit)
    if retry_after is None:
        return None
    headers = ((b"retry-after", str(retry_after).encode()),)
    return Refusal(429, "Too many requests; retry later", headers=headers)


def check_body(route: Route, head: RequestHead) -> Refusal | BodyPlan:
    """The route's ``max_body`` against the declared length, before the upstream is contacted."""
    if head.content_length is None:
        return head.chunked, None
    try:
        declared = int(head.content_length)
    except ValueError:
        return Refusal(400, "Invalid Content-Length", close=True)
    if declared > route.max_body:
        return Refusal(413, "The request body is larger than this route allows")
    return declared > 0, declared
