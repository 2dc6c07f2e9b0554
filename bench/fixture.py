"""The gateway under test: a generated ``routes.yaml`` of 30 routes, its signing key, its tokens.

The key is written the way ``gateway keys generate`` would (``tokens.keys/<kid>.pem``, PKCS8,
0600) and tokens are signed here with PyJWT, independently of the gateway's own issuer, with
exactly what the gateway accepts: ``typ: at+jwt``, ``kid``, and ``iss, aud, sub, iat, exp, jti,
scope`` (plus the ``tenant`` claim one route demands).
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ISSUER = "https://gateway.bench"
AUDIENCE = "api"
KID = "20200101T000000Z-bench"
TOKEN_TTL = 3600
# The request every gateway row sends: a route with scopes, a claim, strip_prefix, header rules.
BENCH_PATH = "/api/v1/orders/12345?expand=items"
STREAM_PREFIX = "/stream"
_RESOURCES = (
    "orders",
    "customers",
    "invoices",
    "products",
    "carts",
    "payments",
    "shipments",
    "reviews",
    "inventory",
    "users",
    "reports",
    "search",
)
SCOPES = " ".join(f"{r}:read" for r in _RESOURCES[:6]) + " orders:write"
USER = "bench-user"
USER_PASSWORD = "bench-password-not-secret"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def new_private_key(algorithm: str) -> PrivateKey:
    """A fresh key for ``RS256`` (RSA 2048), ``ES256`` (P-256) or ``EdDSA`` (Ed25519)."""
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {algorithm}")


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_key(directory: Path, key: PrivateKey, kid: str = KID) -> Path:
    """Write ``key`` as ``<kid>.pem`` into a gateway keys folder (0700/0600)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{kid}.pem"
    path.write_bytes(private_pem(key))
    path.chmod(0o600)
    return path


def sign_token(
    key: PrivateKey | bytes,
    algorithm: str,
    *,
    sub: str = "user-0001",
    kid: str = KID,
    issuer: str = ISSUER,
    now: float | None = None,
) -> str:
    """An access token the gateway accepts on every bench route."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": issued,
        "exp": issued + TOKEN_TTL,
        "jti": uuid.uuid4().hex,
        "scope": SCOPES,
        "tenant": "acme",
    }
    return jwt.encode(claims, key, algorithm=algorithm, headers={"typ": "at+jwt", "kid": kid})


_worker_key: PrivateKey | None = None


def _load_worker_key(pem: bytes) -> None:
    global _worker_key
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(loaded, PrivateKey)
    _worker_key = loaded


def _sign_range(algorithm: str, start: int, count: int) -> list[str]:
    assert _worker_key is not None
    return [
        sign_token(_worker_key, algorithm, sub=f"user-{i:06d}") for i in range(start, start + count)
    ]


def sign_many(key: PrivateKey, algorithm: str, count: int) -> list[str]:
    """``count`` distinct valid tokens, signed on every core (RS256 signing is ~1-2 ms each)."""
    workers = max(1, os.cpu_count() or 1)
    step = max(1, -(-count // (workers * 16)))
    pem = private_pem(key)
    starts = range(0, count, step)
    pool = ProcessPoolExecutor(workers, initializer=_load_worker_key, initargs=(pem,))
    try:
        parts = pool.map(
            _sign_range,
            [algorithm] * len(starts),
            starts,
            [min(step, count - start) for start in starts],
        )
        return [token for part in parts for token in part]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: do not sign the rest first


@dataclass(frozen=True)
class GatewayFixture:
    """Where the generated configuration lives and the token that passes on every route."""

    folder: Path
    config: Path
    key: PrivateKey
    algorithm: str
    token: str
    route_count: int

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _routes(upstream: str, stream_upstream: str) -> list[dict[str, Any]]:
    common_headers = {"set": {"X-Env": "bench", "X-Api-Version": "1"}, "remove": ["X-Debug"]}
    routes: list[dict[str, Any]] = [
        {
            "name": "health",
            "path": "/health",
            "methods": ["GET"],
            "upstream": upstream,
            "auth": "public",
        },
        {
            "name": "docs",
            "path": "/docs",
            "upstream": upstream,
            "auth": "public",
            "strip_prefix": "/docs",
        },
        {
            "name": "legacy",
            "path": "/legacy/v0",
            "upstream": upstream,
            "auth": "optional",
            "strip_prefix": "/legacy",
            "headers": {"remove": ["X-Legacy-Token"]},
        },
        {
            "name": "admin",
            "path": "/admin",
            "upstream": upstream,
            "scopes": ["admin"],
            "timeout": "10s",
        },
        {
            "name": "orders-v2",
            "path": "/api/v2/orders",
            "methods": ["GET"],
            "upstream": upstream,
            "scopes": ["orders:read"],
            "strip_prefix": "/api/v2",
        },
    ]
    for resource in _RESOURCES:
        read: dict[str, Any] = {
            "name": f"{resource}-read",
            "path": f"/api/v1/{resource}",
            "methods": ["GET", "HEAD"],
            "upstream": upstream,
            "strip_prefix": "/api/v1",
            "scopes": [f"{resource}:read"],
            "headers": common_headers,
        }
        if resource == "orders":
            read["claims"] = {"tenant": "acme"}
        routes.append(read)
        routes.append(
            {
                "name": f"{resource}-write",
                "path": f"/api/v1/{resource}",
                "methods": ["POST", "PUT", "PATCH", "DELETE"],
                "upstream": upstream,
                "strip_prefix": "/api/v1",
                "scopes": [f"{resource}:write"],
                "max_body": "1MiB",
                "headers": common_headers,
            }
        )
    routes.append(
        {
            "name": "bench-stream",
            "path": STREAM_PREFIX,
            "upstream": stream_upstream,
            "strip_prefix": STREAM_PREFIX,
            "scopes": ["orders:read"],
            "max_body": "2GiB",
            "timeout": "120s",
        }
    )
    return routes


def write_gateway_config(
    folder: Path,
    *,
    port: int,
    admin_port: int,
    upstream: str,
    stream_upstream: str,
    algorithm: str = "RS256",
    identity_assertion: bool = False,
    trusted_proxies: tuple[str, ...] = (),
) -> GatewayFixture:
    """Generate ``routes.yaml``, the keys folder and a token into ``folder``; with
    ``identity_assertion``, every forwarded request also carries the signed assertion."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    key = new_private_key(algorithm)
    write_key(folder / "keys", key)
    routes = _routes(upstream, stream_upstream)
    document = {
        "version": 1,
        "server": {
            "public_url": f"http://127.0.0.1:{port}",
            "admin": {"host": "127.0.0.1", "port": admin_port},
            "trusted_proxies": list(trusted_proxies),
        },
        "tokens": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "algorithm": algorithm,
            "keys": "./keys",
            "access_ttl": "15m",
        },
        "store": "sqlite:///./data/gateway.db",
        "users": {"file": "./users.yaml"},
        "identity_headers": {
            "X-Auth-Subject": "sub",
            "X-Auth-Scopes": "scope",
            "X-Auth-Tenant": "tenant",
        },
        "routes": routes,
    }
    if identity_assertion:
        document["identity_assertion"] = {"header": "X-Gateway-Assertion", "ttl": "60s"}
    # The file the configuration names must exist (serve refuses it otherwise); the token
    # endpoints' phase adds its user with `gateway users add`.
    (folder / "users.yaml").write_text("users: {}\n")
    config = folder / "routes.yaml"
    config.write_text(
        "# Generated by bench/fixture.py for one benchmark run.\n"
        + yaml.safe_dump(document, sort_keys=False)
    )
    return GatewayFixture(
        folder=folder,
        config=config,
        key=key,
        algorithm=algorithm,
        token=sign_token(key, algorithm),
        route_count=len(routes),
    )
