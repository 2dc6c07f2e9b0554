"""Balancing with passive health, rate limits, CORS and trusted proxies."""

from __future__ import annotations

import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.configs import config_yaml, route
from tests.conftest import GatewayProcess, free_port
from tests.tokens import ISSUER, SigningKey
from tests.upstream import Upstream
from tests.waiting import eventually


def test_one_dead_target_of_two_every_request_succeeds_and_the_dead_one_is_rested(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    dead = free_port()
    targets = [f"http://127.0.0.1:{dead}", f"http://127.0.0.1:{port}"]
    gateway = start_gateway(
        {"routes": [route("pool", "/pool", targets, auth="public", methods=["GET", "POST"])]}
    )
    statuses = [httpx.get(f"{gateway.url}/pool").status_code for _ in range(25)]
    statuses += [httpx.post(f"{gateway.url}/pool", content=b"x").status_code for _ in range(25)]
    assert statuses == [200] * 50
    metrics = httpx.get(f"{gateway.admin_url}/metrics").text
    match = re.search(
        r'gateway_upstream_failures_total\{kind="connect",route="pool"\} ([0-9.]+)', metrics
    ) or re.search(
        r'gateway_upstream_failures_total\{route="pool",kind="connect"\} ([0-9.]+)', metrics
    )
    assert match is not None, metrics
    assert 1 <= float(match.group(1)) <= 3


def test_a_target_that_accepts_but_never_answers_is_rested(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    hung = socket.socket()  # the kernel accepts connections; nobody ever answers
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    try:
        targets = [f"http://127.0.0.1:{hung.getsockname()[1]}", f"http://127.0.0.1:{port}"]
        gateway = start_gateway(
            {"routes": [route("pool", "/pool", targets, auth="public", timeout="500ms")]}
        )
        started = time.monotonic()
        statuses = [httpx.get(f"{gateway.url}/pool", timeout=5).status_code for _ in range(8)]
        elapsed = time.monotonic() - started
    finally:
        hung.close()
    assert statuses == [200] * 8  # a GET that timed out is retried on the other target
    assert elapsed < 1.4, f"{elapsed:.1f} s: the hung target kept getting requests"


def test_a_client_pausing_its_upload_past_the_route_timeout_is_answered_not_timed_out(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    # The pause is the client's: a 504 would blame (and rest) a healthy upstream, and one slow
    # client per target would rest them all.
    _, port = upstream
    gateway = start_gateway(
        {
            "routes": [
                route("pool", "/pool", f"http://127.0.0.1:{port}", auth="public", timeout="500ms")
            ]
        }
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as conn:
        conn.sendall(b"POST /pool HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345")
        time.sleep(1.2)
        conn.sendall(b"67890")
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_a_burst_of_new_connections_is_spread_over_the_workers(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    # On one shared socket the first worker to wake accepted the whole burst.
    _, port = upstream
    gateway = start_gateway(
        {"routes": [route("pool", "/pool", f"http://127.0.0.1:{port}", auth="public")]}, workers=2
    )
    conns = [socket.create_connection(("127.0.0.1", gateway.port), timeout=5) for _ in range(40)]
    workers: dict[bytes, int] = {}
    try:
        for conn in conns:
            conn.sendall(b"GET /pool HTTP/1.1\r\nHost: a\r\n\r\n")
        for conn in conns:
            head = conn.recv(65536).lower()
            request_id = head.split(b"\r\nx-request-id: ")[1].split(b"\r\n")[0]
            process = request_id[:12]  # the generated id starts with a per-process prefix
            workers[process] = workers.get(process, 0) + 1
    finally:
        for conn in conns:
            conn.close()
    assert len(workers) == 2 and min(workers.values()) >= 8, workers


def test_the_gateway_raises_its_descriptor_limit_to_the_hard_limit(tmp_path: Path) -> None:
    SigningKey(tmp_path / "keys", "EdDSA")
    config = tmp_path / "routes.yaml"
    config.write_text(
        config_yaml(
            tokens={"issuer": ISSUER, "keys": "./keys"},
            server={"admin": {"port": free_port()}},
            routes=[route("open", "/open", "http://127.0.0.1:9", auth="public")],
        )
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        # Started the way many init systems start services: a soft limit of 512.
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def raised() -> str | None:
        """The soft limit once the gateway has changed it from 512."""
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {proc.returncode}")
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        soft = re.search(r"Max open files\s+(\S+)", limits).group(1)  # type: ignore[union-attr]
        return soft if soft != "512" else None

    try:
        soft = eventually(raised, timeout=20, interval=0.1)
        assert soft == str(hard if hard != resource.RLIM_INFINITY else 1_048_576)
    finally:
        proc.terminate()
        proc.wait(30)


def test_all_targets_down_is_502(start_gateway: Callable[..., GatewayProcess]) -> None:
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    gateway = start_gateway({"routes": [route("pool", "/pool", dead, auth="public")]})
    assert httpx.get(f"{gateway.url}/pool").status_code == 502


@pytest.fixture
def limited(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess], tmp_path: Path
) -> tuple[GatewayProcess, SigningKey]:
    _, port = upstream
    key = SigningKey(tmp_path / "keys", "EdDSA")
    gateway = start_gateway(
        {
            "tokens": {"issuer": ISSUER, "keys": "./keys"},
            "routes": [
                route(
                    "limited",
                    "/limited",
                    f"http://127.0.0.1:{port}",
                    auth="optional",
                    rate_limit="5/s",
                )
            ],
        }
    )
    return gateway, key


def test_the_sixth_request_in_a_second_is_429_with_retry_after(
    limited: tuple[GatewayProcess, SigningKey],
) -> None:
    gateway, key = limited
    headers = {"Authorization": f"Bearer {key.token(sub='dave')}"}
    with httpx.Client() as client:
        statuses = [client.get(f"{gateway.url}/limited", headers=headers) for _ in range(6)]
    assert [r.status_code for r in statuses[:5]] == [200] * 5
    assert statuses[5].status_code == 429
    assert statuses[5].json()["error"] == "rate_limited"
    assert int(statuses[5].headers["retry-after"]) >= 1


def test_another_subject_is_not_limited_by_the_first(
    limited: tuple[GatewayProcess, SigningKey],
) -> None:
    gateway, key = limited
    with httpx.Client() as client:
        for _ in range(6):
            client.get(
                f"{gateway.url}/limited",
                headers={"Authorization": f"Bearer {key.token(sub='dave')}"},
            )
        other = client.get(
            f"{gateway.url}/limited", headers={"Authorization": f"Bearer {key.token(sub='erin')}"}
        )
    assert other.status_code == 200


@pytest.fixture
def cors_gateway(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> GatewayProcess:
    _, port = upstream
    return start_gateway(
        {
            "cors": {"allow_origins": ["http://app.test:3000"], "allow_credentials": True},
            "routes": [route("api", "/api", f"http://127.0.0.1:{port}")],
        }
    )


def test_a_preflight_from_an_allowed_origin_gets_cors_headers_without_a_token(
    cors_gateway: GatewayProcess,
) -> None:
    response = httpx.options(
        f"{cors_gateway.url}/api/things",
        headers={
            "Origin": "http://app.test:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://app.test:3000"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"]
    assert response.headers["vary"] == "Origin"


def test_a_preflight_from_another_origin_gets_no_cors_headers(
    cors_gateway: GatewayProcess,
) -> None:
    response = httpx.options(
        f"{cors_gateway.url}/api/things",
        headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
    )
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_an_actual_response_to_an_allowed_origin_is_readable_even_when_401(
    cors_gateway: GatewayProcess,
) -> None:
    response = httpx.get(f"{cors_gateway.url}/api/x", headers={"Origin": "http://app.test:3000"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "http://app.test:3000"
    assert response.headers["vary"] == "Origin"


def test_forwarded_headers_are_believed_only_from_trusted_proxies(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(
        {
            "server": {"trusted_proxies": ["127.0.0.0/8"]},
            "routes": [route("p", "/p", f"http://127.0.0.1:{port}", auth="public")],
        }
    )
    seen = httpx.get(
        f"{gateway.url}/p",
        headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
    ).json()["headers"]
    headers = dict(seen)
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "https"
