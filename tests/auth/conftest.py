"""Auth test fixtures: keys made here, a token forger, a fixed clock, a real JWKS server."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

from gateway.auth.keys import PrivateKey

NOW = 1_800_000_000.0
IDP = "https://idp.test/"
OWN = "https://gateway.test"
AUDIENCE = "api"

_ALGORITHMS = get_default_algorithms()


class Clock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(key: PrivateKey, kid: str | None, alg: str | None = None) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def sign(
    header: Mapping[str, Any],
    payload: Mapping[str, Any] | bytes,
    signer: Callable[[bytes], bytes],
) -> str:
    """A compact JWS with exactly this header and payload (no library defaults added)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(body)}"
    return f"{signing_input}.{b64(signer(signing_input.encode()))}"


def signer_for(alg: str, key: Any) -> Callable[[bytes], bytes]:
    algorithm = _ALGORITHMS[alg]
    return lambda message: algorithm.sign(message, key)


@dataclass
class Forge:
    """Makes tokens of the external issuer IDP, valid unless told otherwise."""

    keys: dict[str, tuple[str, PrivateKey]]  # kid -> (alg, private key)
    now: float = NOW

    def claims(self, **changes: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": IDP,
            "sub": "alice",
            "aud": AUDIENCE,
            "iat": int(self.now),
            "exp": int(self.now) + 600,
            "scope": "orders:read",
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not DROP}

    def token(
        self,
        kid: str | None = "rsa-1",
        *,
        alg: str | None = None,
        header: Mapping[str, Any] | None = None,
        key: Any = None,
        **changes: Any,
    ) -> str:
        sign_kid = kid if kid in self.keys else "rsa-1"
        key_alg, private = self.keys[sign_kid]
        alg = alg or key_alg
        full_header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if kid is not None:
            full_header["kid"] = kid
        full_header.update(header or {})
        full_header = {k: v for k, v in full_header.items() if v is not DROP}
        return sign(full_header, self.claims(**changes), signer_for(alg, key or private))


DROP: Any = object()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def rsa_key_2() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def idp_keys(
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> dict[str, tuple[str, PrivateKey]]:
    return {"rsa-1": ("RS256", rsa_key), "ec-1": ("ES256", ec_key), "ed-1": ("EdDSA", ed_key)}


@pytest.fixture
def idp_jwks(idp_keys: dict[str, tuple[str, PrivateKey]]) -> dict[str, Any]:
    return {"keys": [public_jwk(key, kid, alg) for kid, (alg, key) in idp_keys.items()]}


@pytest.fixture
def forge(idp_keys: dict[str, tuple[str, PrivateKey]]) -> Forge:
    return Forge(idp_keys)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class JwksServer:
    """A real HTTP server on 127.0.0.1 serving a JWK Set; counts the fetches it answers."""

    jwks: dict[str, Any]
    url: str = ""
    fetches: int = 0
    status: int = 200
    body: bytes | None = None  # sent instead of the JWK Set when set
    delay: float = 0.0
    redirect_to: str | None = None  # answer 302 with this Location
    other_fetches: int = 0  # fetches of /other.json, a second copy of the set
    runner: web.AppRunner | None = field(default=None, repr=False)

    async def handle(self, request: web.Request) -> web.Response:
        import asyncio

        self.fetches += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.redirect_to is not None:
            return web.Response(status=302, headers={"Location": self.redirect_to})
        body = self.body if self.body is not None else json.dumps(self.jwks).encode()
        return web.Response(body=body, status=self.status, content_type="application/json")

    async def handle_other(self, request: web.Request) -> web.Response:
        self.other_fetches += 1
        return web.json_response(self.jwks)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/jwks.json", self.handle)
        app.router.add_get("/other.json", self.handle_other)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self.runner, sock).start()
        self.url = f"http://127.0.0.1:{port}/jwks.json"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def jwks_server(idp_jwks: dict[str, Any]) -> AsyncIterator[JwksServer]:
    server = JwksServer(jwks=idp_jwks)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def keys_dir(tmp_path: Any) -> Iterator[Any]:
    yield tmp_path / "keys"
