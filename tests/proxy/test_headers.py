"""HeaderPolicy: what of a client's headers reaches the upstream, and of an upstream's the client.

Request headers are handed to the policy as the server hands them on (ASGI): names
lower-cased, values as sent. So a spelling in another letter case is lower-cased here first,
exactly as on the wire; the ``_`` spellings reach the policy as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.config import Route
from gateway.proxy.headers import HeaderPolicy
from tests.configs import build_config, route

UP = "http://127.0.0.1:9000"
CLIENT = "203.0.113.7"  # not a trusted proxy
PROXY = "10.1.2.3"  # in trusted_proxies

CONFIG = build_config(
    server={"trusted_proxies": ["10.0.0.0/8", "2001:db8::/32"]},
    tokens={"access_cookie": {"name": "gw_access"}},
    routes=[
        route("api", "/api", UP),
        route("open", "/open", UP, auth="public"),
        route("passes-authorization", "/fwd", UP, forward_authorization=True),
        route("shaped", "/shaped", UP, headers={"set": {"X-Env": "test"}, "remove": ["X-Debug"]}),
    ],
)
POLICY = HeaderPolicy(CONFIG)
ROUTES: dict[str, Route] = {r.name: r for r in CONFIG.routes}

Headers = list[tuple[str, str]]


def upstream(
    headers: Headers,
    *,
    to: str = "api",
    peer: str | None = CLIENT,
    scheme: str = "http",
    identity: Sequence[tuple[str, str]] = (),
    policy: HeaderPolicy = POLICY,
    routes: dict[str, Route] = ROUTES,
) -> Headers:
    """The headers the upstream receives when a client sends ``headers`` to route ``to``."""
    sent = policy.upstream_request(
        [(name.lower().encode(), value.encode("latin-1")) for name, value in headers],
        routes[to],
        peer=peer,
        scheme=scheme,
        request_id=b"req-1",
        identity=[(name.encode(), value.encode()) for name, value in identity],
    )
    return [(name.decode(), value.decode("latin-1")) for name, value in sent]


def downstream(headers: Headers) -> Headers:
    """The headers the client receives when the upstream answers with ``headers``."""
    out = POLICY.downstream_response(
        [(name.encode(), value.encode("latin-1")) for name, value in headers]
    )
    return [(name.decode(), value.decode("latin-1")) for name, value in out]


def values(headers: Headers, name: str) -> list[str]:
    return [value for n, value in headers if n == name]


def names(headers: Headers) -> set[str]:
    return {name for name, _ in headers}


# -- identity headers --------------------------------------------------------------------------

IDENTITY_SPELLINGS = [
    pytest.param([("X-Auth-Subject", "mallory")], id="canonical case"),
    pytest.param([("x-auth-subject", "mallory")], id="lower case"),
    pytest.param([("X-AUTH-SUBJECT", "mallory")], id="upper case"),
    pytest.param([("X_Auth_Subject", "mallory")], id="underscores for dashes"),
    pytest.param([("x-auth_subject", "mallory")], id="one underscore"),
    pytest.param([("X_AUTH_SCOPES", "admin")], id="the scopes header, upper case underscores"),
    pytest.param([("X-Auth-Subject", "mallory"), ("X-Auth-Subject", "eve")], id="sent twice"),
]


@pytest.mark.parametrize("sent", IDENTITY_SPELLINGS)
def test_a_client_identity_header_never_reaches_the_upstream(sent: Headers) -> None:
    received = upstream(sent)
    assert not names(received) & {"x-auth-subject", "x-auth-scopes", "x_auth_subject"}
    assert not [name for name in names(received) if name.replace("_", "-").startswith("x-auth")]


@pytest.mark.parametrize("sent", IDENTITY_SPELLINGS)
def test_a_client_identity_header_is_stripped_on_a_public_route_too(sent: Headers) -> None:
    received = upstream(sent, to="open")
    assert not [name for name in names(received) if name.replace("_", "-").startswith("x-auth")]


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param([("X-Gateway-Assertion", "forged")], id="canonical case"),
        pytest.param([("X_GATEWAY_ASSERTION", "forged")], id="upper case underscores"),
    ],
)
def test_the_default_assertion_header_is_stripped_even_with_the_assertion_off(
    sent: Headers,
) -> None:
    assert CONFIG.identity_assertion is None
    received = upstream(sent, to="open")
    assert not [n for n in names(received) if n.replace("_", "-") == "x-gateway-assertion"]


def test_a_configured_assertion_header_is_stripped_from_clients() -> None:
    config = build_config(
        identity_assertion={"header": "X-Identity"}, routes=[route("a", "/a", UP)]
    )
    received = upstream(
        [("X-Identity", "forged"), ("x_identity", "forged")],
        to="a",
        policy=HeaderPolicy(config),
        routes={"a": config.routes[0]},
    )
    assert not [n for n in names(received) if n.replace("_", "-") == "x-identity"]


def test_the_upstream_sees_only_the_gateways_own_identity_headers() -> None:
    received = upstream(
        [("X-Auth-Subject", "mallory"), ("X_Auth_Subject", "eve")],
        identity=[("x-auth-subject", "alice"), ("x-auth-scopes", "orders:read")],
    )
    assert values(received, "x-auth-subject") == ["alice"]
    assert values(received, "x-auth-scopes") == ["orders:read"]


def test_configured_identity_headers_replace_the_default_ones() -> None:
    config = build_config(
        identity_headers={"X-User": "sub", "X-Tenant": "tenant"}, routes=[route("api", "/api", UP)]
    )
    received = upstream(
        [("X-User", "mallory"), ("X_Tenant", "evil"), ("X-Auth-Subject", "not ours now")],
        policy=HeaderPolicy(config),
        routes={"api": config.routes[0]},
    )
    assert not names(received) & {"x-user", "x-tenant", "x_tenant"}
    assert values(received, "x-auth-subject") == ["not ours now"]


# -- hop-by-hop --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Connection", id="Connection"),
        pytest.param("Keep-Alive", id="Keep-Alive"),
        pytest.param("Proxy-Connection", id="Proxy-Connection"),
        pytest.param("Proxy-Authenticate", id="Proxy-Authenticate"),
        pytest.param("Proxy-Authorization", id="Proxy-Authorization"),
        pytest.param("TE", id="TE"),
        pytest.param("Trailer", id="Trailer"),
        pytest.param("Trailers", id="Trailers"),
        pytest.param("Transfer-Encoding", id="Transfer-Encoding"),
        pytest.param("Upgrade", id="Upgrade"),
    ],
)
def test_a_hop_by_hop_request_header_is_not_forwarded(name: str) -> None:
    received = upstream([(name, "x"), ("X-Kept", "1")])
    assert name.lower() not in names(received)
    assert values(received, "x-kept") == ["1"]


@pytest.mark.parametrize(
    "connection",
    [
        pytest.param([("Connection", "X-Secret-Hop")], id="named alone"),
        pytest.param([("Connection", "keep-alive, X-Secret-Hop")], id="named after keep-alive"),
        pytest.param([("Connection", "close"), ("Connection", "x-secret-hop")], id="second header"),
    ],
)
def test_a_header_named_by_connection_is_not_forwarded(connection: Headers) -> None:
    received = upstream([*connection, ("X-Secret-Hop", "1"), ("X-Kept", "1")])
    assert "x-secret-hop" not in names(received)
    assert values(received, "x-kept") == ["1"]


def test_connection_naming_a_header_that_comes_before_it_still_removes_it() -> None:
    received = upstream([("X-Secret-Hop", "1"), ("Connection", "X-Secret-Hop")])
    assert "x-secret-hop" not in names(received)


# -- headers that would make the upstream serve something else ---------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("X-Original-URL", id="X-Original-URL"),
        pytest.param("X-Rewrite-URL", id="X-Rewrite-URL"),
        pytest.param("X-HTTP-Method-Override", id="X-HTTP-Method-Override"),
        pytest.param("X-HTTP-Method", id="X-HTTP-Method"),
        pytest.param("X-Method-Override", id="X-Method-Override"),
        pytest.param("X_Original_URL", id="X_Original_URL with underscores"),
        pytest.param("X_HTTP_Method_Override", id="X_HTTP_Method_Override with underscores"),
    ],
)
def test_a_rerouting_header_is_dropped(name: str) -> None:
    received = upstream([(name, "/admin" if "URL" in name else "DELETE"), ("X-Kept", "1")])
    assert names(received) == names(upstream([("X-Kept", "1")]))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("X_Forwarded_For", id="X_Forwarded_For"),
        pytest.param("X_Forwarded_Host", id="X_Forwarded_Host"),
        pytest.param("X_Real_IP", id="X_Real_IP"),
        pytest.param("X_Request_Id", id="X_Request_Id"),
        pytest.param("Transfer_Encoding", id="Transfer_Encoding"),
        pytest.param("Proxy_Authorization", id="Proxy_Authorization"),
    ],
)
def test_an_underscore_spelling_of_a_header_the_gateway_controls_is_dropped(name: str) -> None:
    received = upstream([(name, "1.2.3.4")], peer=PROXY)
    assert name.lower() not in names(received)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Host", id="Host"),
        pytest.param("Expect", id="Expect"),
        pytest.param("Content-Length", id="Content-Length"),
    ],
)
def test_a_header_the_http_client_writes_itself_is_not_copied(name: str) -> None:
    assert name.lower() not in names(upstream([(name, "x")]))


# -- X-Forwarded-*, Forwarded, X-Real-IP, Via --------------------------------------------------


def test_x_forwarded_for_is_the_peer_alone_for_an_untrusted_peer() -> None:
    received = upstream([("X-Forwarded-For", "198.51.100.1")], peer=CLIENT)
    assert values(received, "x-forwarded-for") == [CLIENT]


def test_x_forwarded_for_from_a_trusted_proxy_gets_the_peer_appended() -> None:
    received = upstream([("X-Forwarded-For", "198.51.100.1")], peer=PROXY)
    assert values(received, "x-forwarded-for") == [f"198.51.100.1, {PROXY}"]


def test_several_x_forwarded_for_headers_from_a_trusted_proxy_are_joined_in_order() -> None:
    received = upstream(
        [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "198.51.100.2")], peer=PROXY
    )
    assert values(received, "x-forwarded-for") == [f"198.51.100.1, 198.51.100.2, {PROXY}"]


def test_x_forwarded_for_is_added_when_the_client_sent_none() -> None:
    assert values(upstream([]), "x-forwarded-for") == [CLIENT]


def test_a_trusted_ipv6_proxy_is_believed() -> None:
    received = upstream([("X-Forwarded-For", "198.51.100.1")], peer="2001:db8::5")
    assert values(received, "x-forwarded-for") == ["198.51.100.1, 2001:db8::5"]


@pytest.mark.parametrize(
    ("peer", "scheme", "expected"),
    [
        pytest.param(CLIENT, "http", "http", id="untrusted peer: the scheme the gateway saw"),
        pytest.param(PROXY, "http", "https", id="trusted proxy: its X-Forwarded-Proto"),
    ],
)
def test_x_forwarded_proto(peer: str, scheme: str, expected: str) -> None:
    received = upstream([("X-Forwarded-Proto", "https")], peer=peer, scheme=scheme)
    assert values(received, "x-forwarded-proto") == [expected]


def test_x_forwarded_proto_is_the_scheme_when_the_client_sent_none() -> None:
    assert values(upstream([], scheme="https"), "x-forwarded-proto") == ["https"]


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        pytest.param(CLIENT, "gateway.example", id="untrusted peer: the Host it sent"),
        pytest.param(PROXY, "public.example", id="trusted proxy: its X-Forwarded-Host"),
    ],
)
def test_x_forwarded_host(peer: str, expected: str) -> None:
    received = upstream(
        [("Host", "gateway.example"), ("X-Forwarded-Host", "public.example")], peer=peer
    )
    assert values(received, "x-forwarded-host") == [expected]


def test_no_x_forwarded_host_without_a_host() -> None:
    assert "x-forwarded-host" not in names(upstream([("X-Forwarded-Host", "public.example")]))


@pytest.mark.parametrize("name", ["Forwarded", "X-Real-IP"])
def test_forwarded_and_x_real_ip_from_an_untrusted_peer_are_dropped(name: str) -> None:
    assert name.lower() not in names(upstream([(name, "for=198.51.100.1")], peer=CLIENT))


@pytest.mark.parametrize("name", ["Forwarded", "X-Real-IP"])
def test_forwarded_and_x_real_ip_from_a_trusted_proxy_pass(name: str) -> None:
    received = upstream([(name, "for=198.51.100.1")], peer=PROXY)
    assert values(received, name.lower()) == ["for=198.51.100.1"]


CLIENT_CLAIMS = [
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Scheme",
    "X-Forwarded-Ssl",
    "X-Forwarded-Server",
    "X-Original-Host",
    "True-Client-IP",
    "X-Client-IP",
    "CF-Connecting-IP",
]


@pytest.mark.parametrize("name", CLIENT_CLAIMS)
def test_other_forwarding_headers_from_an_untrusted_peer_are_dropped(name: str) -> None:
    # Frameworks build URLs and pick the client address from these: a client may not choose.
    assert name.lower() not in names(upstream([(name, "203.0.113.9")], peer=CLIENT))


@pytest.mark.parametrize("name", CLIENT_CLAIMS)
def test_other_forwarding_headers_from_a_trusted_proxy_pass(name: str) -> None:
    assert values(upstream([(name, "203.0.113.9")], peer=PROXY), name.lower()) == ["203.0.113.9"]


def test_via_names_the_gateway_once_and_the_clients_is_dropped() -> None:
    assert values(upstream([("Via", "1.1 evil")]), "via") == ["1.1 gateway"]


def test_x_request_id_is_the_gateways_not_the_clients() -> None:
    assert values(upstream([("X-Request-Id", "client-chosen")]), "x-request-id") == ["req-1"]


# -- credentials meant for the gateway ---------------------------------------------------------


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        pytest.param("gw_refresh=r; theme=dark; gw_access=a", ["theme=dark"], id="both removed"),
        pytest.param("theme=dark;gw_access=a;lang=en", ["theme=dark; lang=en"], id="no spaces"),
        pytest.param("theme=dark; gw_access =a", ["theme=dark"], id="space before ="),
        pytest.param("gw_refresh=r; gw_access=a", [], id="nothing left: no Cookie header"),
        pytest.param(
            "gw_refresh_old=1; my_gw_access=2",
            ["gw_refresh_old=1; my_gw_access=2"],
            id="longer names stay",
        ),
        pytest.param("theme=gw_access", ["theme=gw_access"], id="a value that looks like a name"),
    ],
)
def test_the_gateways_cookies_are_removed_from_cookie(cookie: str, expected: list[str]) -> None:
    assert values(upstream([("Cookie", cookie)]), "cookie") == expected


def test_each_cookie_header_is_cleaned() -> None:
    received = upstream([("Cookie", "gw_access=a; a=1"), ("Cookie", "b=2; gw_refresh=r")])
    assert values(received, "cookie") == ["a=1", "b=2"]


def test_the_gateways_cookie_names_come_from_the_configuration() -> None:
    config = build_config(
        tokens={"cookie": {"name": "sid"}, "access_cookie": {"name": "at"}},
        routes=[route("api", "/api", UP)],
    )
    received = upstream(
        [("Cookie", "sid=1; at=2; gw_refresh=3; gw_access=4")],
        policy=HeaderPolicy(config),
        routes={"api": config.routes[0]},
    )
    assert values(received, "cookie") == ["gw_refresh=3; gw_access=4"]


def test_without_an_access_cookie_only_the_refresh_cookie_is_the_gateways() -> None:
    config = build_config(routes=[route("api", "/api", UP)])
    received = upstream(
        [("Cookie", "gw_refresh=r; gw_access=a")],
        policy=HeaderPolicy(config),
        routes={"api": config.routes[0]},
    )
    assert values(received, "cookie") == ["gw_access=a"]


def test_authorization_is_not_forwarded_by_default() -> None:
    assert "authorization" not in names(upstream([("Authorization", "Bearer t")]))


def test_authorization_is_forwarded_on_a_route_with_forward_authorization() -> None:
    received = upstream([("Authorization", "Bearer t")], to="passes-authorization")
    assert values(received, "authorization") == ["Bearer t"]


# -- a route's own header rules ----------------------------------------------------------------


def test_a_route_sets_its_header_in_place_of_the_clients() -> None:
    received = upstream([("X-Env", "prod"), ("X_Env", "prod")], to="shaped")
    assert [(n, v) for n, v in received if n.replace("_", "-") == "x-env"] == [("x-env", "test")]


@pytest.mark.parametrize("name", ["X-Debug", "x-debug", "X_Debug"])
def test_a_route_removes_its_listed_header_in_any_spelling(name: str) -> None:
    assert not [n for n in names(upstream([(name, "1")], to="shaped")) if "debug" in n]


def test_a_routes_header_rules_do_not_touch_other_routes() -> None:
    received = upstream([("X-Debug", "1"), ("X-Env", "prod")], to="api")
    assert values(received, "x-debug") == ["1"]
    assert values(received, "x-env") == ["prod"]


def test_other_headers_pass_unchanged_and_in_order() -> None:
    sent = [("Accept", "application/json"), ("X-Custom", "a, b"), ("X-Custom", "c")]
    received = upstream(sent)
    assert [(n, v) for n, v in received if n in {"accept", "x-custom"}] == [
        ("accept", "application/json"),
        ("x-custom", "a, b"),
        ("x-custom", "c"),
    ]


# -- the response ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "set_cookie",
    [
        pytest.param("gw_refresh=stolen; Path=/auth; HttpOnly", id="the refresh cookie"),
        pytest.param("gw_access=forged; Path=/", id="the access cookie"),
        pytest.param(" gw_access=forged", id="with a leading space"),
    ],
)
def test_an_upstream_cannot_set_the_gateways_cookies(set_cookie: str) -> None:
    received = downstream([("Set-Cookie", set_cookie), ("Set-Cookie", "theme=dark; Path=/")])
    assert values(received, "set-cookie") == ["theme=dark; Path=/"]


def test_hop_by_hop_response_headers_and_those_connection_names_are_dropped() -> None:
    received = downstream(
        [
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("X-Secret-Hop", "1"),
            ("X-Custom", "kept"),
        ]
    )
    assert received == [("x-custom", "kept")]


def test_the_upstreams_x_request_id_is_dropped() -> None:
    assert downstream([("X-Request-Id", "upstream-chosen")]) == []


def test_response_header_names_are_lower_cased() -> None:
    assert downstream([("Content-Type", "text/plain")]) == [("content-type", "text/plain")]


# -- the client's address ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        pytest.param("10.1.2.3", True, id="inside an IPv4 CIDR"),
        pytest.param("2001:db8::5", True, id="inside an IPv6 CIDR"),
        pytest.param("203.0.113.7", False, id="outside"),
        pytest.param("not-an-address", False, id="not an address"),
        pytest.param("", False, id="empty"),
        pytest.param(None, False, id="no peer (a Unix socket)"),
    ],
)
def test_is_trusted(peer: str | None, trusted: bool) -> None:
    assert POLICY.is_trusted(peer) is trusted


def test_nobody_is_trusted_without_trusted_proxies() -> None:
    assert not HeaderPolicy(build_config()).is_trusted("127.0.0.1")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        pytest.param(CLIENT, [b"198.51.100.1"], CLIENT, id="untrusted peer: the peer"),
        pytest.param(PROXY, [b"198.51.100.1"], "198.51.100.1", id="trusted peer: the hop before"),
        pytest.param(
            PROXY,
            [b"198.51.100.1, 198.51.100.2"],
            "198.51.100.2",
            id="the rightmost untrusted hop, not the client-written leftmost",
        ),
        pytest.param(
            PROXY, [b"198.51.100.1, 10.0.0.9"], "198.51.100.1", id="trusted hops are skipped"
        ),
        pytest.param(
            PROXY, [b"198.51.100.1", b"198.51.100.2"], "198.51.100.2", id="several headers"
        ),
        pytest.param(PROXY, [b"10.0.0.8, 10.0.0.9"], "10.0.0.8", id="all trusted: the first"),
        pytest.param(PROXY, [b""], PROXY, id="empty: the peer"),
    ],
)
def test_client_address(peer: str, forwarded_for: list[bytes], client: str) -> None:
    assert POLICY.client_address(peer, forwarded_for) == client
