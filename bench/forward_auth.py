"""The forward-auth rows: the proxied row with the identity assertion on, nginx ``auth_request``
asking the gateway's ``/auth/verify``, and ``/auth/verify`` on its own.

Each runs its own 2-worker gateway on its own configuration (the benchmark's routes, plus
``identity_assertion`` and, for forward-auth, ``trusted_proxies: [127.0.0.1]``), so the other
gateway rows keep the configuration their history was measured with.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from bench import nginx
from bench.fixture import BENCH_PATH, GatewayFixture, write_gateway_config
from bench.plan import ASSERTION, AUTH_REQUEST, VERIFY
from bench.procs import LOOPBACK, Child, StartError, free_port, wait_for_status

if TYPE_CHECKING:
    from bench.phases import Bench

__all__ = ["measure_assertion", "measure_forward_auth"]


def _gateway(bench: Bench, name: str, *, trusted: bool) -> tuple[GatewayFixture, Child, int]:
    port = free_port()
    assert bench.upstream is not None
    fixture = write_gateway_config(
        bench.folder / name,
        port=port,
        admin_port=free_port(),
        upstream=f"http://{LOOPBACK}:{bench.ports.upstream}",
        stream_upstream=f"http://{LOOPBACK}:{bench.ports.stream}",
        identity_assertion=True,
        trusted_proxies=(LOOPBACK,) if trusted else (),
    )
    argv = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(fixture.config)]
    argv += ["--host", LOOPBACK, "--port", str(port), "--workers", "2"]
    child = bench.processes.start(name, argv, cwd=fixture.folder)
    try:
        wait_for_status(child, f"http://{LOOPBACK}:{port}{BENCH_PATH}", fixture.auth_header)
    except StartError:
        bench.processes.stop(child)
        raise
    return fixture, child, port


def measure_assertion(bench: Bench) -> None:
    """The 2-worker proxied row again, every request carrying the signed assertion."""
    if bench.upstream is None:
        return
    try:
        fixture, child, port = _gateway(bench, "gateway-assertion", trusted=False)
    except StartError as error:
        bench.results.skip([ASSERTION], f"gateway did not start: {str(error).splitlines()[0]}")
        return
    try:
        bench._rows(ASSERTION, f"http://{LOOPBACK}:{port}{BENCH_PATH}", child, fixture.auth_header)
    finally:
        bench.processes.stop(child)


def measure_forward_auth(bench: Bench) -> None:
    """nginx ``auth_request`` in front of the upstream asking the gateway, then the gateway's
    ``/auth/verify`` alone at c=50 (the question nginx asks, without nginx)."""
    if bench.upstream is None or bench.nginx is None:
        return
    try:
        fixture, gateway, gateway_port = _gateway(bench, "gateway-verify", trusted=True)
    except StartError as error:
        reason = f"gateway did not start: {str(error).splitlines()[0]}"
        bench.results.skip([AUTH_REQUEST, VERIFY], reason)
        return
    try:
        folder = bench.folder / "nginx-auth-request"
        port = free_port()
        config = nginx.auth_request_config(folder, port, bench.ports.upstream, gateway_port)
        proxy = nginx.start_nginx(bench.processes, bench.nginx, "nginx-auth", folder, config, port)
        try:
            # The CPU column counts nginx only; the gateway's share shows in the verify row.
            bench._rows(
                AUTH_REQUEST, f"http://{LOOPBACK}:{port}{BENCH_PATH}", proxy, fixture.auth_header
            )
        finally:
            bench.processes.stop(proxy)
        question = {
            **fixture.auth_header,
            "X-Original-Method": "GET",
            "X-Original-URI": BENCH_PATH,
        }
        url = f"http://{LOOPBACK}:{gateway_port}/auth/verify"
        bench._warm_up(url, question)
        bench._wrk(VERIFY, 50, url, gateway, question)
    finally:
        bench.processes.stop(gateway)
