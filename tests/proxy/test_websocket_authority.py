"""The end of a token's authority ends WebSockets and event streams; nothing else does
(docs/behaviour.md#websockets-and-event-streams)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.configs import route
from tests.conftest import GatewayProcess, free_port
from tests.tokens import AUDIENCE, ISSUER, SigningKey
from tests.tokenservice.conftest import CHEAP
from tests.upstream import ServerThread, Upstream
from tests.waiting import eventually
from tests.ws_upstream import WsUpstream

PASSWORD = "socket-password-1"


@dataclass
class Stack:
    gateway: GatewayProcess
    sockets: WsUpstream
    http_port: int
    key: SigningKey

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.gateway.port}{path}"

    def login(self) -> httpx.Response:
        answer = httpx.post(
            f"{self.gateway.url}/auth/login", json={"username": "sam", "password": PASSWORD}
        )
        assert answer.status_code == 200
        return answer


def stack_config(ws_port: int, http_port: int) -> dict[str, object]:
    ws, http = f"http://127.0.0.1:{ws_port}", f"http://127.0.0.1:{http_port}"
    return {
        "tokens": {"issuer": ISSUER, "audience": AUDIENCE, "keys": "./keys", "leeway": 0},
        "store": "sqlite:///./data/gateway.db",
        "users": {"file": "./users.yaml"},
        "routes": [
            route("ticker", "/ticker", ws, websocket=True),
            route("events", "/events", http),
            route("public-events", "/public/events", f"{http}/events", auth="public"),
            route("echo", "/echo", ws, websocket=True),
        ],
    }


@pytest.fixture
def stack(start_gateway: Callable[..., GatewayProcess], tmp_path: Path) -> Iterator[Stack]:
    users = {"sam": {"password_hash": CHEAP.hash(PASSWORD), "scopes": ["orders:read"]}}
    (tmp_path / "users.yaml").write_text(yaml.safe_dump({"users": users}))
    key = SigningKey(tmp_path / "keys")
    sockets = WsUpstream().start()
    http = Upstream()
    http_port = free_port()
    try:
        with ServerThread(http, http_port):
            gateway = start_gateway(stack_config(sockets.port, http_port))
            yield Stack(gateway, sockets, http_port, key)
    finally:
        sockets.stop()


async def _until_closed(ws: object, within: float = 5.0) -> ConnectionClosed:
    """The close that ends ``ws``; fails if it is still open after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()  # type: ignore[attr-defined]
    except ConnectionClosed as closed:
        return closed
    raise AssertionError("unreachable")


async def test_logout_closes_a_live_socket_within_a_second_and_a_half(stack: Stack) -> None:
    login = stack.login()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    async with connect(stack.url("/ticker"), additional_headers=headers) as ws:
        assert (await ws.recv()).startswith("tick")
        logout = await asyncio.to_thread(
            httpx.post,
            f"{stack.gateway.url}/auth/logout",
            cookies={"gw_refresh": login.cookies["gw_refresh"]},
        )
        assert logout.status_code == 204
        logged_out = time.monotonic()
        closed = await _until_closed(ws)
    assert time.monotonic() - logged_out < 1.5
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (1008, "session revoked")
    assert stack.sockets.wait_close()[0] == 1001


def _read_events(url: str, headers: dict[str, str], seconds: float) -> tuple[int, float]:
    """Read the stream for at most ``seconds``: the events and when it ended (or was left)."""
    events = 0
    started = time.time()
    with httpx.stream("GET", url, headers=headers, timeout=10) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("data:"):
                events += 1
            if time.time() - started > seconds:
                break
    return events, time.time()


def test_an_event_stream_on_a_required_route_ends_within_a_second_of_expiry(
    stack: Stack,
) -> None:
    token = stack.key.token(ttl=2)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    events, ended = _read_events(
        f"{stack.gateway.url}/events", {"Authorization": f"Bearer {token}"}, seconds=8
    )
    assert events > 10
    assert exp <= ended < exp + 1.0  # ended cleanly: httpx raises on a cut chunked body


def test_an_event_stream_on_a_public_route_is_never_cut(stack: Stack) -> None:
    token = stack.key.token(ttl=1)
    events, _ = _read_events(
        f"{stack.gateway.url}/public/events", {"Authorization": f"Bearer {token}"}, seconds=3
    )
    assert events > 40  # ran on well past the token's expiry


async def test_sigterm_closes_open_sockets_with_1001(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.key.token()}"}
    async with connect(stack.url("/echo"), additional_headers=headers) as ws:
        await ws.send("hi")
        await ws.recv()
        stack.gateway.proc.send_signal(signal.SIGTERM)
        closed = await _until_closed(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1001
    assert stack.sockets.wait_close()[0] == 1001
    assert await asyncio.to_thread(stack.gateway.proc.wait, 20) == 0


async def test_a_reload_leaves_open_sockets_on_their_configuration(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.key.token()}"}
    async with connect(stack.url("/echo"), additional_headers=headers) as ws:
        await ws.send("before")
        assert await ws.recv() == "before"
        config = stack.gateway.config_path
        document = yaml.safe_load(config.read_text())
        document["routes"] = [r for r in document["routes"] if r["name"] != "echo"]
        config.write_text(yaml.safe_dump(document))
        stack.gateway.proc.send_signal(signal.SIGHUP)
        eventually(lambda: "reloaded" in stack.gateway.stderr(), timeout=5)
        await ws.send("after")
        assert await ws.recv() == "after"


async def test_metrics_count_open_sockets_and_their_closes(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.key.token()}"}
    metrics = f"{stack.gateway.admin_url}/metrics"
    async with connect(stack.url("/echo"), additional_headers=headers) as ws:
        await ws.send("hi")
        await ws.recv()
        eventually(
            lambda: 'gateway_websockets_open{route="echo"} 1.0' in httpx.get(metrics).text,
            timeout=5,
        )
    eventually(
        lambda: (
            'gateway_websocket_closes_total{reason="client",route="echo"} 1.0'
            in httpx.get(metrics).text
        ),
        timeout=5,
    )
    assert 'gateway_websockets_open{route="echo"} 0.0' in httpx.get(metrics).text
