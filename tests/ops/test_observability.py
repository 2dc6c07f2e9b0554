"""Access log, metrics and the admin listener (docs/behaviour.md#logs-and-metrics)."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.configs import route
from tests.conftest import GatewayProcess, free_port
from tests.tokens import ISSUER, SigningKey
from tests.upstream import Upstream
from tests.waiting import eventually

FIELDS = {
    "time",
    "request_id",
    "method",
    "path",
    "route",
    "status",
    "upstream_status",
    "duration_ms",
    "upstream_ms",
    "sub",
    "client",
    "bytes_in",
    "bytes_out",
}


def _config(port: int, **sections: Any) -> dict[str, Any]:
    """An open and a closed route to the upstream on ``port``, and any other ``sections``."""
    return {
        **sections,
        "tokens": {"issuer": ISSUER, "keys": "./keys"},
        "routes": [
            route("open", "/open", f"http://127.0.0.1:{port}", auth="public"),
            route("closed", "/closed", f"http://127.0.0.1:{port}"),
        ],
    }


def _parsed(gateway: GatewayProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in gateway.stdout().splitlines() if line.strip()]


def _log_lines(gateway: GatewayProcess, at_least: int) -> list[dict[str, object]]:
    """The access log once it has ``at_least`` lines (they are written every 0.2 s)."""

    def enough() -> list[dict[str, object]]:
        lines = _parsed(gateway)
        assert len(lines) >= at_least, gateway.stdout()
        return lines

    return eventually(enough, timeout=2.0)


def _counts(metrics: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for match in re.finditer(
        r'^gateway_requests_total\{route="([^"]*)",status="(\d+)"\} ([0-9.e+]+)$', metrics, re.M
    ):
        found[(match.group(1), match.group(2))] = float(match.group(3))
    return found


def test_metrics_count_requests_by_route_and_status_across_two_workers(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port), workers=2)
    for _ in range(30):
        with httpx.Client() as client:  # fresh connections reach both workers
            client.get(f"{gateway.url}/open")
            client.get(f"{gateway.url}/closed")
            client.get(f"{gateway.url}/nowhere")

    # Each worker publishes its counts every second; any worker answers /metrics.
    def complete() -> str:
        text = httpx.get(f"{gateway.admin_url}/metrics").text
        assert _counts(text).get(("open", "200")) == 30, _counts(text)
        return text

    metrics = eventually(complete, timeout=3.0)
    counts = _counts(metrics)
    assert counts[("open", "200")] == 30
    assert counts[("closed", "401")] == 30
    assert counts[("-", "404")] == 30
    assert 'gateway_auth_failures_total{reason="missing"} 30.0' in metrics
    assert "gateway_request_duration_seconds_bucket" in metrics
    assert "gateway_upstream_duration_seconds_bucket" in metrics


def test_every_access_log_line_is_json_with_the_fields_and_no_secret(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port))
    key = SigningKey(tmp_path / "keys", "EdDSA")
    token = key.token(sub="carol")

    def accepted() -> httpx.Response:  # once the watcher has picked up the new key
        response = httpx.get(
            f"{gateway.url}/closed?api_key=query-secret",
            headers={"Authorization": f"Bearer {token}", "Cookie": "gw_refresh=cookie-secret"},
        )
        assert response.status_code == 200, response.text
        return response

    responses = [
        eventually(accepted, timeout=3.0, interval=0.1),
        httpx.get(f"{gateway.url}/closed", headers={"Authorization": "Bearer not-a-token-secret"}),
        httpx.post(f"{gateway.url}/open/x", content=b"12345"),
    ]

    def all_logged() -> list[dict[str, object]]:
        lines = _parsed(gateway)
        logged = {line["request_id"] for line in lines}
        assert {r.headers["x-request-id"] for r in responses} <= logged, gateway.stdout()
        return lines

    lines = eventually(all_logged, timeout=2.0)
    for line in lines:
        assert set(line) == FIELDS
    by_id = {line["request_id"]: line for line in lines}
    first = by_id[responses[0].headers["x-request-id"]]
    assert first["sub"] == "carol" and first["route"] == "closed"
    assert first["path"] == "/closed"
    posted = by_id[responses[2].headers["x-request-id"]]
    assert posted["bytes_in"] == 5 and posted["upstream_status"] == 200
    everything = gateway.output()
    for secret in (token, "query-secret", "cookie-secret", "not-a-token-secret"):
        assert secret not in everything


def test_a_request_the_http_server_refuses_is_logged_and_counted_too(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port))
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=3) as conn:
        conn.sendall(b"GET /open HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ")
    (line,) = _log_lines(gateway, 1)
    assert (line["status"], line["method"], line["path"], line["route"]) == (400, "-", "-", None)
    assert line["client"] == "127.0.0.1"
    assert f"\r\nx-request-id: {line['request_id']}\r\n".encode() in answer
    counted = eventually(  # each worker publishes its counts every second
        lambda: _counts(httpx.get(f"{gateway.admin_url}/metrics").text).get(("-", "400")),
        timeout=3.0,
    )
    assert counted == 1


def test_a_body_the_server_cannot_parse_is_logged_with_the_400_the_client_got(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port))
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=3) as conn:
        conn.sendall(
            b"POST /open/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nhello\r\n0\r\n\r\n"
        )
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ")
    (line,) = _log_lines(gateway, 1)
    assert (line["status"], line["path"]) == (400, "/open/x")
    assert f"\r\nx-request-id: {line['request_id']}\r\n".encode() in answer


def test_text_log_format_is_one_readable_line(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port), extra_args=("--log-format", "text"))
    httpx.get(f"{gateway.url}/open")
    line = eventually(lambda: gateway.stdout().strip().splitlines()[-1:], timeout=2.0)[0]
    assert " 200 GET /open route=open " in line


def test_healthz_and_readyz_answer_on_the_admin_port_only(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    gateway = start_gateway(_config(port))
    assert httpx.get(f"{gateway.admin_url}/healthz").status_code == 200
    ready = httpx.get(f"{gateway.admin_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert httpx.get(f"{gateway.url}/metrics").status_code == 404
    assert httpx.get(f"{gateway.url}/healthz").status_code == 404


def test_readyz_names_an_unreachable_store_while_proxying_goes_on(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    dead = free_port()
    gateway = start_gateway(_config(port, store=f"redis://127.0.0.1:{dead}/0"))
    ready = httpx.get(f"{gateway.admin_url}/readyz")
    assert ready.status_code == 503
    assert "store unreachable" in ready.json()["reasons"]
    assert httpx.get(f"{gateway.url}/open").status_code == 200


def test_readyz_names_a_trusted_issuer_whose_jwks_was_never_fetched(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    dead = free_port()
    issuer = {
        "issuer": "https://idp.test/",
        "audience": "api",
        "jwks_uri": f"http://127.0.0.1:{dead}/jwks.json",
    }
    gateway = start_gateway(_config(port, trusted_issuers=[issuer]))
    ready = httpx.get(f"{gateway.admin_url}/readyz")
    assert ready.status_code == 503
    assert "JWKS of https://idp.test/ never fetched" in ready.json()["reasons"]


def test_a_stalled_stdout_drops_log_lines_instead_of_stopping_requests(
    upstream: tuple[Upstream, int], start_gateway: Callable[..., GatewayProcess]
) -> None:
    _, port = upstream
    unread, stdout = os.pipe()  # a log shipper that stopped reading: the pipe fills
    try:
        gateway = start_gateway(_config(port), stdout_fd=stdout)
        os.close(stdout)
        answered = 0
        deadline = time.monotonic() + 5  # past the ~3 s of lines held back for a slow reader
        with httpx.Client(timeout=3) as client:
            while time.monotonic() < deadline:
                assert client.get(f"{gateway.url}/open").status_code == 200
                answered += 1
        assert answered > 1000  # far more lines than the 64 KiB pipe holds

        def dropped() -> float:
            text = httpx.get(f"{gateway.admin_url}/metrics").text
            found = re.search(r"^gateway_access_log_dropped_lines_total ([0-9.e+]+)$", text, re.M)
            return float(found.group(1)) if found else 0.0

        assert eventually(dropped, timeout=3.0) > 0
    finally:
        threading.Thread(  # let the gateway write what it still holds, then stop
            target=lambda: [os.read(unread, 1 << 20) for _ in range(1000)], daemon=True
        ).start()
