"""Properties of the header policy (docs/behaviour.md#what-the-upstream-sees, #headers).

Whatever a client sends, on any route (public ones included), from a trusted proxy or not, the
upstream request ``HeaderPolicy.upstream_request`` builds never carries the client's value of
an identity header (in any spelling: letter case, ``_`` for ``-``, sent several times), of a
hop-by-hop header, of a header the client's ``Connection`` names, or of a header that re-routes
or re-methods a request. Names reach the policy lower-cased, as the server hands them on, so
the spellings are lower-cased after the ``_`` and letter-case changes are made.

Every client value here is ``CLIENT_VALUE``, which the gateway never writes itself: a header of
a forbidden name with that value upstream is the client's, whatever the gateway added beside it.
"""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.auth import extract_token
from gateway.config import Config, Route
from gateway.config.owned_headers import FORWARDING, HOP_BY_HOP, REROUTING
from gateway.proxy.headers import HeaderPolicy
from tests.configs import build_config, route

UP = "http://127.0.0.1:9000"
CLIENT_VALUE = b"from-the-client"
ROUTES = [
    route("api", "/api", UP),
    route("open", "/open", UP, auth="public"),
    route("maybe", "/maybe", UP, auth="optional"),
    route("passes-authorization", "/fwd", UP, forward_authorization=True),
    route("shaped", "/shaped", UP, headers={"set": {"X-Env": "test"}, "remove": ["X-Debug"]}),
]
SERVER = {"trusted_proxies": ["10.0.0.0/8"]}
CONFIGS = [
    build_config(server=SERVER, tokens={"access_cookie": {"name": "gw_access"}}, routes=ROUTES),
    build_config(
        server=SERVER,
        identity_headers={"X-User": "sub", "X_Tenant": "tenant", "X-Auth-Groups": "groups"},
        routes=ROUTES,
    ),
]
POLICIES = [(HeaderPolicy(config), config) for config in CONFIGS]
PEERS = ["203.0.113.7", "10.1.2.3", "2001:db8::1", None]  # 10.1.2.3 is a trusted proxy
OTHER_NAMES = ["accept", "x-debug", "x-env", "content-type", "cookie", "authorization", "x-kept"]


def identity_names(config: Config) -> list[bytes]:
    return [name.encode() for name, _ in config.identity_headers]


@st.composite
def spelling(draw: st.DrawFn, name: bytes, *, underscores: bool = True) -> bytes:
    """``name`` as a client may spell it: any letter case, any ``-`` as ``_``; lower-cased
    afterwards, as the server hands names on (``underscores=False``: the letter case only, and
    not lower-cased, for the tokens of a ``Connection`` value)."""
    chars = []
    for char in name.decode():
        if underscores and char == "-" and draw(st.booleans()):
            char = "_"
        chars.append(char.upper() if draw(st.booleans()) else char)
    spelt = "".join(chars)
    return (spelt.lower() if underscores else spelt).encode()


def sent_headers(names: st.SearchStrategy[bytes]) -> st.SearchStrategy[list[tuple[bytes, bytes]]]:
    """A client's header list: spellings of ``names``, some sent several times, among others."""
    spellings = st.lists(names, min_size=1, max_size=4).flatmap(
        lambda chosen: st.lists(st.sampled_from(chosen), min_size=1, max_size=8)
    )
    others = st.lists(st.sampled_from(OTHER_NAMES).map(str.encode), max_size=4)
    return st.builds(
        lambda ours, theirs: [(n, CLIENT_VALUE) for n in ours] + [(n, b"v") for n in theirs],
        spellings,
        others,
    ).flatmap(st.permutations)


def upstream(
    policy: HeaderPolicy,
    headers: Iterable[tuple[bytes, bytes]],
    route_: Route,
    peer: str | None,
    identity: list[tuple[bytes, bytes]],
) -> list[tuple[bytes, bytes]]:
    return policy.upstream_request(
        list(headers), route_, peer=peer, scheme="http", request_id=b"req-1", identity=identity
    )


def clients_values(received: list[tuple[bytes, bytes]], names: Iterable[bytes]) -> list[bytes]:
    """The headers upstream that read as one of ``names`` and carry the client's value."""
    wanted = set(names)
    return [n for n, v in received if n.replace(b"_", b"-") in wanted and v == CLIENT_VALUE]


policies = st.sampled_from(POLICIES)
route_index = st.integers(0, len(ROUTES) - 1)
peers = st.sampled_from(PEERS)


@given(policies, route_index, peers, st.data())
@example(POLICIES[0], 1, PEERS[0], None)  # X_Auth_Subject on a public route
def test_a_client_identity_header_in_any_spelling_never_reaches_the_upstream(
    chosen: tuple[HeaderPolicy, Config], index: int, peer: str | None, data: st.DataObject | None
) -> None:
    policy, config = chosen
    names = identity_names(config)
    if data is None:
        sent = [(b"x_auth_subject", CLIENT_VALUE), (b"x-auth-subject", CLIENT_VALUE)]
        ours = [(b"x-auth-subject", b"alice")]
    else:
        sent = data.draw(sent_headers(st.sampled_from(names).flatmap(spelling)), label="sent")
        ours = data.draw(
            st.lists(st.sampled_from(names).map(lambda n: (n, b"gateway's own")), unique=True),
            label="identity",
        )
    received = upstream(policy, sent, config.routes[index], peer, ours)
    assert not clients_values(received, names), received
    # The gateway's own identity headers, and nothing else of those names, in any spelling.
    assert [(n, v) for n, v in received if n.replace(b"_", b"-") in names] == ours


@given(policies, route_index, peers, st.data())
def test_a_hop_by_hop_header_in_any_spelling_never_reaches_the_upstream(
    chosen: tuple[HeaderPolicy, Config], index: int, peer: str | None, data: st.DataObject
) -> None:
    policy, config = chosen
    sent = data.draw(sent_headers(st.sampled_from(sorted(HOP_BY_HOP)).flatmap(spelling)))
    received = upstream(policy, sent, config.routes[index], peer, [])
    assert not [n for n, _ in received if n.replace(b"_", b"-") in HOP_BY_HOP], received


@given(policies, route_index, peers, st.data())
def test_a_rerouting_header_in_any_spelling_never_reaches_the_upstream(
    chosen: tuple[HeaderPolicy, Config], index: int, peer: str | None, data: st.DataObject
) -> None:
    policy, config = chosen
    sent = data.draw(sent_headers(st.sampled_from(sorted(REROUTING)).flatmap(spelling)))
    received = upstream(policy, sent, config.routes[index], peer, [])
    assert not [n for n, _ in received if n.replace(b"_", b"-") in REROUTING], received


# Names a client might list in Connection: its own, and those the gateway writes or controls.
CONNECTION_TARGETS = [
    b"x-kept",
    b"x-custom",
    b"accept",
    b"cookie",
    b"authorization",
    b"x-env",
    b"x-forwarded-for",
    b"x-request-id",
    b"via",
    b"x-auth-subject",
]
connection_token = st.sampled_from(CONNECTION_TARGETS).flatmap(
    lambda name: spelling(name, underscores=False)
)


@given(policies, route_index, peers, st.data())
@example(POLICIES[0], 0, PEERS[0], None)
def test_a_header_the_connection_header_names_never_reaches_the_upstream(
    chosen: tuple[HeaderPolicy, Config], index: int, peer: str | None, data: st.DataObject | None
) -> None:
    policy, config = chosen
    if data is None:
        listed = [b"X-Kept", b"x-forwarded-for"]
        separators = [b", "]
    else:
        listed = data.draw(st.lists(connection_token, min_size=1, max_size=4), label="listed")
        separators = data.draw(
            st.lists(st.sampled_from([b",", b", ", b" ,", b",,", b" , "]), min_size=1),
            label="separators",
        )
    value = b""
    for i, token in enumerate(listed):
        value += (separators[i % len(separators)] if i else b"") + token
    named = {token.lower() for token in listed}
    sent = [(b"connection", value)] + [(name, CLIENT_VALUE) for name in sorted(named)]
    received = upstream(policy, sent, config.routes[index], peer, [])
    assert not [n for n, v in received if n in named and v == CLIENT_VALUE], (value, received)
    assert b"connection" not in {n for n, _ in received}


@given(policies, route_index, st.sampled_from(["203.0.113.7", "2001:db8::1", None]), st.data())
def test_a_forwarding_header_from_an_untrusted_peer_never_reaches_the_upstream(
    chosen: tuple[HeaderPolicy, Config], index: int, peer: str | None, data: st.DataObject
) -> None:
    policy, config = chosen
    sent = data.draw(sent_headers(st.sampled_from(sorted(FORWARDING)).flatmap(spelling)))
    received = upstream(policy, sent, config.routes[index], peer, [])
    assert not clients_values(received, FORWARDING), received


# The access cookie, as a browser or a client may send it among others, as the wire delivers it.
WIRE = "\t" + "".join(map(chr, range(0x20, 0x7F))) + "".join(map(chr, range(0x80, 0x100)))
cookie_pair = st.builds(
    lambda lead, name, sep, value: (lead + name + sep + value).encode("latin-1"),
    st.sampled_from(["", " ", "\t", "\xa0"]),
    st.sampled_from(["gw_access", "gw_access ", "gw_access\t", "gw_refresh", "GW_ACCESS", "x"]),
    st.sampled_from(["=", " = ", "=\t"]),
    st.one_of(
        st.sampled_from(["token", '"token"', "t=k"]), st.text(st.sampled_from(WIRE), max_size=8)
    ),
)
cookie_header_values = st.lists(cookie_pair, min_size=1, max_size=4).map(b"; ".join)


@given(st.lists(cookie_header_values, min_size=1, max_size=3), route_index, peers)
@example([b"a=1; gw_access = token; b=2"], 0, PEERS[0])
@example([b"gw_access=; gw_access=token", b"\tgw_refresh\t=r"], 1, PEERS[1])
def test_the_gateways_cookies_never_reach_the_upstream_as_the_gateway_reads_them(
    cookies: list[bytes], index: int, peer: str | None
) -> None:
    policy, config = POLICIES[0]
    received = upstream(policy, [(b"cookie", v) for v in cookies], config.routes[index], peer, [])
    forwarded = [(n, v) for n, v in received if n == b"cookie"]
    # Read by the gateway's own access-cookie reader, what goes upstream holds neither cookie.
    for name in ("gw_access", "gw_refresh"):
        assert extract_token(forwarded, b"", name) is None, (name, forwarded)
