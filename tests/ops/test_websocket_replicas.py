"""A logout on one replica closes the session's WebSockets on another, sharing Redis or
PostgreSQL (docs/behaviour.md#websockets-and-event-streams)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess, free_port
from tests.ops.test_replicas import _cleanup, _store_url
from tests.tokenservice.conftest import CHEAP
from tests.ws_upstream import WsUpstream

PASSWORD = "replica-socket-password"


@dataclass
class Pair:
    a: GatewayProcess
    b: GatewayProcess


@pytest.fixture(params=["redis", "postgres"], scope="module")
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    backend: str = request.param
    store, handle = _store_url(backend)
    folder: Path = tmp_path_factory.mktemp(f"socket-replicas-{backend}")
    users = {"una": {"password_hash": CHEAP.hash(PASSWORD), "scopes": ["orders:read"]}}
    (folder / "users.yaml").write_text(yaml.safe_dump({"users": users}))
    sockets = WsUpstream().start()
    started: list[GatewayProcess] = []
    try:
        for name in ("a", "b"):
            admin = free_port()
            config = folder / f"routes-{name}.yaml"
            config.write_text(
                config_yaml(
                    server={"admin": {"port": admin}},
                    tokens={"issuer": "http://gateway.test", "keys": "./keys"},
                    store=store,
                    users={"file": "./users.yaml"},
                    routes=[
                        route(
                            "ticker", "/ticker", f"http://127.0.0.1:{sockets.port}", websocket=True
                        )
                    ],
                )
            )
            started.append(GatewayProcess(config, free_port(), admin_port=admin))
        yield Pair(*started)
    finally:
        for gateway in started:
            gateway.stop()
        sockets.stop()
        _cleanup(backend, handle)


async def test_logout_on_one_replica_closes_the_socket_on_the_other(pair: Pair) -> None:
    login = httpx.post(f"{pair.a.url}/auth/login", json={"username": "una", "password": PASSWORD})
    assert login.status_code == 200
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    async with connect(f"ws://127.0.0.1:{pair.b.port}/ticker", additional_headers=headers) as ws:
        assert (await ws.recv()).startswith("tick")
        logout = await asyncio.to_thread(
            httpx.post,
            f"{pair.a.url}/auth/logout",
            cookies={"gw_refresh": login.cookies["gw_refresh"]},
        )
        assert logout.status_code == 204
        logged_out = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
    assert time.monotonic() - logged_out < 1.5
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "session revoked")
