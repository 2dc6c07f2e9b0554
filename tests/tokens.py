"""Keys and tokens made by the tests themselves, independent of the gateway's own code."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ISSUER = "http://gateway.test"
AUDIENCE = "api"


def new_private_key(algorithm: str) -> Any:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


class SigningKey:
    """A signing key written into a gateway ``tokens.keys`` directory as ``<kid>.pem``."""

    def __init__(self, directory: Path, algorithm: str = "EdDSA", kid: str | None = None) -> None:
        self.algorithm = algorithm
        self.kid = (
            kid or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:4]
        )
        self.private = new_private_key(algorithm)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{self.kid}.pem"
        path.write_bytes(
            self.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(
        self, *, ttl: float = 300, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "scope": "orders:read",
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = {"typ": "at+jwt", "kid": self.kid, **(header or {})}
        return jwt.encode(payload, self.private, algorithm=self.algorithm, headers=headers)
