"""Redis and PostgreSQL behind a relay that cuts, stalls, resets or swallows replies.

While the store is faulty the token endpoints answer the documented 503 ``store_unavailable``
within seconds, proxying with valid access tokens goes on, and ``/readyz`` says not ready; once
the relay heals everything recovers by itself, and the session started before the fault is
still the one session it was: its cookie refreshes, once, and nothing was revoked.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import redis

from tests.faults.relay import Mode, Relay
from tests.store.conftest import POSTGRES_URL, REDIS_URL, require_service
from tests.tokenservice.conftest import (
    USERS,
    Service,
    call,
    config_text,
    launch,
    login,
    refresh,
    refresh_cookie,
    start_session,
)
from tests.waiting import eventually

# Time for a token endpoint to give up on a faulty store: the store's own timeouts (Redis 2 s,
# PostgreSQL 3 s to connect, 5 s per command) and a loaded 2-core machine's margin.
ANSWER_WITHIN = 12.0
MODES: list[Mode] = ["cut", "stall", "reset", "swallow"]
# A retry after a lost answer must come within the grace; the outage lasts longer than the
# default 2 s here, as a real one would.
GRACE = "60s"


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    netloc[-1] = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc="@".join(netloc)))


@pytest.fixture(params=["redis", "postgres"])
def store_behind_relay(request: pytest.FixtureRequest) -> Iterator[tuple[Relay, str]]:
    """A relay to the real store and the store URL through it; what the test wrote is removed."""
    unique = uuid.uuid4().hex[:16]
    if request.param == "redis":
        require_service("Redis", REDIS_URL)
        base, option = REDIS_URL, f"prefix=gwfault:{unique}:"
    else:
        require_service("PostgreSQL", POSTGRES_URL)
        base, option = POSTGRES_URL, f"schema=gwfault_{unique}"
    parts = urlsplit(base)
    with Relay((parts.hostname or "127.0.0.1", parts.port or 0)) as relay:
        yield relay, f"{_through(base, relay.port)}?{option}"
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"gwfault:{unique}:*"))
        if keys:
            client.delete(*keys)
        client.close()
    else:
        asyncio.run(_drop_schema(f"gwfault_{unique}"))


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


@pytest.fixture
def service(
    store_behind_relay: tuple[Relay, str], upstream_port: int, tmp_path: Path
) -> Iterator[Service]:
    _, store = store_behind_relay
    running = launch(
        tmp_path / "gateway",
        config_text(upstream_port, store=store, refresh_reuse_grace=GRACE),
        workers=1,
    )
    yield running
    running.stop()


def _timed_login(service: Service) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = login(service.url, "bob", USERS["bob"][0])
    return answer, time.monotonic() - started


def _readiness(service: Service) -> int:
    return httpx.get(f"{service.gateway.admin_url}/readyz", timeout=10).status_code


@pytest.mark.parametrize("mode", MODES)
def test_a_faulty_store_gives_503_quickly_proxying_goes_on_and_all_recovers(
    service: Service, store_behind_relay: tuple[Relay, str], mode: Mode
) -> None:
    relay, _ = store_behind_relay
    session = start_session(service.url, "alice")
    relay.set(mode)

    # All at once: each waits out the store's timeouts, and the suite's time is counted.
    with ThreadPoolExecutor(4) as pool:
        logging_in = pool.submit(_timed_login, service)
        refreshing = pool.submit(refresh, service.url, session.cookie)
        proxied = pool.submit(call, service.url, session.access_token)
        readiness = pool.submit(_readiness, service)
    answer, took = logging_in.result()
    assert (answer.status_code, answer.json()["error"]) == (503, "store_unavailable")
    assert took < ANSWER_WITHIN
    refused = refreshing.result()
    assert (refused.status_code, refused.json()["error"]) == (503, "store_unavailable")
    assert proxied.result().status_code == 200
    assert readiness.result() == 503

    relay.heal()
    eventually(lambda: _timed_login(service)[0].status_code == 200, timeout=20, interval=0.5)
    assert _readiness(service) == 200
    # The session of before the fault: its cookie refreshes (a grace answer if the rotation
    # committed while its answer was lost), and the cookie it gets refreshes in turn.
    again = refresh(service.url, session.cookie)
    assert again.status_code == 200, again.text
    cookie = refresh_cookie(again)
    assert cookie is not None
    following = refresh(service.url, cookie)
    assert following.status_code == 200, following.text
    assert call(service.url, following.json()["access_token"]).status_code == 200


def test_a_refresh_whose_answer_the_store_swallowed_is_retried_and_the_session_survives(
    service: Service, store_behind_relay: tuple[Relay, str]
) -> None:
    relay, _ = store_behind_relay
    session = start_session(service.url, "alice")
    relay.set("swallow")
    lost = refresh(service.url, session.cookie)  # the store rotates; its answer never comes
    assert lost.status_code == 503
    relay.heal()
    retried = eventually(
        lambda: (answer := refresh(service.url, session.cookie)).status_code != 503 and answer,
        timeout=20,
        interval=0.5,
    )
    assert retried.status_code == 200, retried.text
    cookie = refresh_cookie(retried)
    assert cookie is not None
    # Not forked: the cookie of the retry is the session's one live token; it goes on rotating.
    for _ in range(3):
        answer = refresh(service.url, cookie)
        assert answer.status_code == 200, answer.text
        cookie = refresh_cookie(answer)
    metrics = httpx.get(f"{service.gateway.admin_url}/metrics").text
    assert "gateway_refresh_reuse_detections_total 0.0" in metrics
