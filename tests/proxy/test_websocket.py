"""WebSockets through the real gateway to a real WebSocket upstream (docs/behaviour.md#websockets-and-event-streams)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.configs import route
from tests.conftest import GatewayProcess
from tests.tokens import AUDIENCE, ISSUER, SigningKey
from tests.waiting import eventually
from tests.ws_upstream import WsUpstream

PUBLIC_URL = "http://gateway.test"
CORS_ORIGIN = "http://app.test"


@dataclass
class Sockets:
    gateway: GatewayProcess
    upstream: WsUpstream
    key: SigningKey

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.gateway.port}{path}"

    def bearer(self, **claims: object) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key.token(**claims)}"}  # type: ignore[arg-type]


def socket_config(upstream_port: int, **tokens: object) -> dict[str, object]:
    up = f"http://127.0.0.1:{upstream_port}"
    return {
        "server": {"public_url": PUBLIC_URL, "max_body": "64KiB"},
        "tokens": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "keys": "./keys",
            "leeway": 0,
            "access_cookie": {"name": "gw_access"},
            **tokens,
        },
        "store": "sqlite:///./data/gateway.db",
        "cors": {"allow_origins": [CORS_ORIGIN]},
        "routes": [
            route("ws", "/ws", up, websocket=True, scopes=["orders:read"]),
            route("echo", "/echo", up, websocket=True),
            route("ticker", "/ticker", up, websocket=True),
            route("open", "/ws-open", f"{up}/ws", websocket=True, auth="public"),
            route("plain", "/plain", f"{up}/ws"),
        ],
    }


@pytest.fixture
def sockets(start_gateway: Callable[..., GatewayProcess], tmp_path: Path) -> Iterator[Sockets]:
    upstream = WsUpstream().start(
        select_subprotocol=lambda _conn, offered: "chat" if "chat" in offered else None
    )
    key = SigningKey(tmp_path / "keys")
    try:
        gateway = start_gateway(socket_config(upstream.port))
        yield Sockets(gateway, upstream, key)
    finally:
        upstream.stop()


async def test_messages_pass_both_ways_intact_and_in_order(sockets: Sockets) -> None:
    async with connect(sockets.url("/echo"), additional_headers=sockets.bearer()) as ws:
        sent = []
        for index in range(1000):
            message: str | bytes = f"text {index} ✓" if index % 2 else bytes([index % 256]) * index
            sent.append(message)
            await ws.send(message)
        received = [await ws.recv() for _ in range(1000)]
    assert received == sent


async def test_fragments_ping_and_pong_pass(sockets: Sockets) -> None:
    async with connect(sockets.url("/echo"), additional_headers=sockets.bearer()) as ws:
        await ws.send(["frag", "ments ", "joined"])  # one message in three frames
        assert await ws.recv() == "fragments joined"
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)  # the pong came back through the gateway


async def test_a_refused_handshake_never_reaches_the_upstream(sockets: Sockets) -> None:
    cases = [
        ("/ws", {}, 401),
        ("/ws", {"Authorization": "Bearer not-a-token"}, 401),
        ("/ws", sockets.bearer(scope="other"), 403),
        ("/plain", sockets.bearer(), 400),
    ]
    for path, headers, status in cases:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(sockets.url(path), additional_headers=headers):
                pass
        assert refused.value.response.status_code == status, path
    assert sockets.upstream.seen == []


async def test_a_foreign_origin_is_refused_whatever_the_token(sockets: Sockets) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            sockets.url("/ws"), additional_headers=sockets.bearer(), origin="http://evil.test"
        ):
            pass
    assert refused.value.response.status_code == 403
    body = json.loads(refused.value.response.body)
    assert body["error"] == "forbidden"
    assert sockets.upstream.seen == []


async def test_own_and_cors_origins_are_accepted(sockets: Sockets) -> None:
    for origin in (PUBLIC_URL, CORS_ORIGIN):
        async with connect(
            sockets.url("/echo"), additional_headers=sockets.bearer(), origin=origin
        ) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"


async def test_a_public_route_accepts_any_origin(sockets: Sockets) -> None:
    async with connect(sockets.url("/ws-open"), origin="http://evil.test") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"


async def test_the_token_may_come_as_a_subprotocol_entry_never_sent_on_or_echoed(
    sockets: Sockets,
) -> None:
    token = sockets.key.token()
    async with connect(sockets.url("/echo"), subprotocols=["chat", f"bearer.{token}"]) as ws:
        assert ws.subprotocol == "chat"
        await ws.send("hello")
        assert await ws.recv() == "hello"
    (handshake,) = sockets.upstream.seen
    assert handshake.values("Sec-WebSocket-Protocol") == ["chat"]
    assert token not in json.dumps(handshake.headers)
    assert handshake.values("X-Auth-Subject") == ["alice"]
    assert handshake.values("Authorization") == []


async def test_the_token_may_come_as_the_access_cookie(sockets: Sockets) -> None:
    cookie = {"Cookie": f"gw_access={sockets.key.token()}"}
    async with connect(sockets.url("/echo"), additional_headers=cookie) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
    assert sockets.upstream.seen[0].values("X-Auth-Subject") == ["alice"]
    assert "gw_access" not in json.dumps(sockets.upstream.seen[0].headers)


async def test_an_upstream_refusal_comes_back_as_an_ordinary_answer(sockets: Sockets) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(sockets.url("/ws/missing"), additional_headers=sockets.bearer()):
            pass
    assert refused.value.response.status_code == 404
    assert refused.value.response.body == b"no such socket\n"
    assert len(sockets.upstream.seen) == 1


async def test_the_token_expiry_closes_the_socket_with_1008(sockets: Sockets) -> None:
    token = sockets.key.token(ttl=2)
    headers = {"Authorization": f"Bearer {token}"}
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    async with connect(sockets.url("/ticker"), additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(6):
                while True:
                    await ws.recv()
        ended = time.time()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "token expired")
    assert exp - 0.1 <= ended < exp + 1.0  # at expiry: not before, and within a second
    assert sockets.upstream.wait_close()[0] == 1001


async def test_either_peer_closing_closes_the_other_with_the_same_code(sockets: Sockets) -> None:
    async with connect(sockets.url("/echo"), additional_headers=sockets.bearer()) as ws:
        await ws.send("hi")
        await ws.recv()
        await ws.close(code=4001, reason="done here")
    assert sockets.upstream.wait_close() == (4001, "done here")


async def test_a_frame_larger_than_max_body_closes_with_1009(sockets: Sockets) -> None:
    async with connect(
        sockets.url("/echo"), additional_headers=sockets.bearer(), max_size=None
    ) as ws:
        await ws.send(b"x" * 1024)
        assert await ws.recv() == b"x" * 1024
        await ws.send(os.urandom(64 * 1024 + 1))  # random: permessage-deflate cannot shrink it
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert sockets.upstream.wait_close()[0] == 1001  # going away: it did nothing wrong


async def test_a_frame_from_the_upstream_larger_than_max_body_closes_it_with_1009(
    sockets: Sockets,
) -> None:
    async with connect(sockets.url("/echo"), additional_headers=sockets.bearer()) as ws:
        await ws.send("flood")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert sockets.upstream.wait_close()[0] == 1009


async def test_the_socket_end_is_one_access_log_line(sockets: Sockets) -> None:
    async with connect(sockets.url("/echo"), additional_headers=sockets.bearer()) as ws:
        await ws.send("hello")
        await ws.recv()
        await ws.close(code=1000)

    def logged() -> dict[str, object]:
        lines = [json.loads(x) for x in sockets.gateway.stdout().splitlines() if x.strip()]
        sockets_ = [x for x in lines if x["status"] == 101]
        assert sockets_
        return sockets_[-1]

    line = eventually(logged, timeout=5)
    assert line["route"] == "echo"
    assert line["close_code"] == 1000
    assert line["bytes_in"] > 5 and line["bytes_out"] > 5  # type: ignore[operator]
