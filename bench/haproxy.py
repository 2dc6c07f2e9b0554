"""HAProxy enforcing the gateway's token: what an ops team would run at the edge instead.

Debian's HAProxy 2.6 has ``jwt_verify`` built in. The configuration checks what the gateway
checks on the benchmark's route, with the same public key: a bearer token is present, its
``alg`` is RS256, its signature verifies against the PEM public key (every request: HAProxy
has no verified-token cache), ``exp`` is in the future, ``aud`` is the audience; then the
identity header is set from ``sub`` (a client's own copy is removed first), ``Authorization``
is removed, and the request goes to the same nginx upstream over kept-alive connections.
Two threads, like the gateway's two workers; no logging, like the reference nginx.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from bench.fixture import AUDIENCE, PrivateKey
from bench.procs import LOOPBACK, Child, Processes, wait_for_port

THREADS = 2


def write_public_key(folder: Path, key: PrivateKey) -> Path:
    """The signing key's public half as PEM, where HAProxy reads it at start-up."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "jwt-public.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def config(port: int, upstream_port: int, public_key: Path) -> str:
    """``haproxy.cfg`` for the JWT check in front of the upstream."""
    deny = "http-request deny deny_status 401"
    return f"""global
    nbthread {THREADS}
    maxconn 8000
    tune.bufsize 16384

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 75s
    option http-keep-alive
    http-reuse always

frontend jwt
    bind {LOOPBACK}:{port} backlog 4096
    maxconn 8000
    {deny} unless {{ http_auth_bearer -m found }}
    http-request set-var(txn.bearer) http_auth_bearer
    {deny} unless {{ var(txn.bearer),jwt_header_query('$.alg') -m str RS256 }}
    {deny} unless {{ var(txn.bearer),jwt_verify("RS256","{public_key}") -m int 1 }}
    http-request set-var(txn.now) date()
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    {deny} unless {{ var(txn.exp),sub(txn.now) -m int gt 0 }}
    {deny} unless {{ var(txn.bearer),jwt_payload_query('$.aud') -m str {AUDIENCE} }}
    http-request del-header X-Auth-Subject
    http-request set-header X-Auth-Subject %[var(txn.bearer),jwt_payload_query('$.sub')]
    http-request del-header Authorization
    default_backend upstream

backend upstream
    server nginx {LOOPBACK}:{upstream_port}
"""


def start_haproxy(processes: Processes, haproxy: str, folder: Path, text: str, port: int) -> Child:
    """Check ``text`` with ``haproxy -c``, then run it in the foreground until the port accepts."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "haproxy.cfg"
    path.write_text(text)
    checked = processes.start("haproxy-check", [haproxy, "-c", "-f", str(path)])
    checked.process.wait(30)
    if checked.process.returncode != 0:
        raise RuntimeError(f"haproxy -c refused the configuration: {checked.tail(5)}")
    child = processes.start("haproxy", [haproxy, "-db", "-f", str(path)])
    wait_for_port(child, port)
    return child
