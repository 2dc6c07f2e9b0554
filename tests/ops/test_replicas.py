"""Several replicas sharing Redis or PostgreSQL behave as one gateway (docs/behaviour.md#refresh-tokens-and-cookies)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
import yaml

from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess, free_port
from tests.store.conftest import POSTGRES_URL, REDIS_URL, require_service
from tests.tokenservice.conftest import CHEAP
from tests.upstream import ServerThread, Upstream
from tests.waiting import eventually

PASSWORD = "replica-password-1"


@dataclass
class Replicas:
    a: GatewayProcess
    b: GatewayProcess


def _store_url(backend: str) -> tuple[str, object]:
    if backend == "redis":
        require_service("Redis", REDIS_URL)
        prefix = f"gwtest:{uuid.uuid4().hex}:"
        return f"{REDIS_URL}?prefix={prefix}", prefix
    require_service("PostgreSQL", POSTGRES_URL)
    schema = f"gwtest_{uuid.uuid4().hex[:16]}"
    return f"{POSTGRES_URL}?schema={schema}", schema


def _cleanup(backend: str, handle: object) -> None:
    if backend == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{handle}*"))
        if keys:
            client.delete(*keys)
        client.close()
        return

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{handle}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(params=["redis", "postgres"], scope="module")
def replicas(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    backend: str = request.param
    store, handle = _store_url(backend)
    folder: Path = tmp_path_factory.mktemp(f"replicas-{backend}")
    users = {"rita": {"password_hash": CHEAP.hash(PASSWORD), "scopes": ["orders:read"]}}
    (folder / "users.yaml").write_text(yaml.safe_dump({"users": users}))
    upstream = Upstream()
    upstream_port = free_port()
    started: list[GatewayProcess] = []
    with ServerThread(upstream, upstream_port):
        try:
            for name in ("a", "b"):
                admin = free_port()
                config = folder / f"routes-{name}.yaml"
                up = f"http://127.0.0.1:{upstream_port}"
                config.write_text(
                    config_yaml(
                        server={"admin": {"port": admin}},
                        tokens={"issuer": "http://gateway.test", "keys": "./keys"},
                        store=store,
                        users={"file": "./users.yaml"},
                        routes=[
                            route("api", "/api", up),
                            route("limited", "/limited", up, auth="public", rate_limit="6/min"),
                        ],
                    )
                )
                started.append(GatewayProcess(config, free_port(), admin_port=admin))
            yield Replicas(*started)
        finally:
            for gateway in started:
                gateway.stop()
            _cleanup(backend, handle)


def _login(url: str) -> httpx.Response:
    return httpx.post(f"{url}/auth/login", json={"username": "rita", "password": PASSWORD})


def test_a_session_started_on_one_replica_refreshes_on_the_other(replicas: Replicas) -> None:
    login = _login(replicas.a.url)
    assert login.status_code == 200
    cookie = login.cookies["gw_refresh"]
    refreshed = httpx.post(f"{replicas.b.url}/auth/refresh", cookies={"gw_refresh": cookie})
    assert refreshed.status_code == 200
    assert "gw_refresh" in refreshed.cookies
    token = refreshed.json()["access_token"]
    call = httpx.get(f"{replicas.a.url}/api/x", headers={"Authorization": f"Bearer {token}"})
    assert call.status_code == 200


def test_logout_on_one_replica_stops_the_token_on_the_other_within_a_second(
    replicas: Replicas,
) -> None:
    login = _login(replicas.a.url)
    token = login.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{replicas.b.url}/api/x", headers=headers).status_code == 200
    logout = httpx.post(
        f"{replicas.a.url}/auth/logout", cookies={"gw_refresh": login.cookies["gw_refresh"]}
    )
    assert logout.status_code == 204

    def refused_by_b() -> bool:
        status = httpx.get(f"{replicas.b.url}/api/x", headers=headers).status_code
        assert status != 200, "replica b still accepts a logged-out token"
        return True

    eventually(refused_by_b, timeout=1.5)


def test_replicas_share_one_rate_limit(replicas: Replicas) -> None:
    statuses = []
    for index in range(7):
        target = replicas.a if index % 2 == 0 else replicas.b
        statuses.append(httpx.get(f"{target.url}/limited").status_code)
    assert statuses[:6] == [200] * 6
    assert statuses[6] == 429
