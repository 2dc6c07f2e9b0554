"""The gateway's own signing keys, and the verification-key type every key source returns.

The keys directory (``tokens.keys``) holds one unencrypted PEM private key per file named
``<kid>.pem``. A kid is a UTC timestamp plus a random suffix (``20261129T070102Z-3f9a``), so
sorting kids sorts keys by age: the newest signs, and every key stays published in the JWKS until
an operator deletes its file, so tokens signed before a rotation keep verifying.

Keys are parsed once, at load, into key objects: signing from a PEM string would re-parse it on
every call (about 37 ms for RS256). A key's algorithm is derived from its type, never from
configuration or from a token: an ES256 key left in a ring now configured for EdDSA is still
published (``alg: ES256``) and still verifies the tokens it signed, so rotating across algorithms
works. A kid is only ever a dictionary key here: a token's ``kid`` never reaches the filesystem.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from gateway.config import SIGNING_ALGORITHMS, VERIFY_ALGORITHMS

__all__ = [
    "SIGNING_ALGORITHMS",
    "VERIFY_ALGORITHMS",
    "KeyFileError",
    "KeyRing",
    "PrivateKey",
    "PublicKey",
    "VerificationKey",
    "compatible_algorithms",
    "ensure_key",
    "generate_key",
    "read_key_files",
]

log = logging.getLogger(__name__)

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = (
    ed25519.Ed25519PublicKey | ed448.Ed448PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
)

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
MIN_RSA_BITS = 2048
_PRIVATE_TYPES = (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)
_KID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class KeyFileError(Exception):
    """A key file or directory that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key object with its kid and the algorithms it may verify."""

    kid: str | None
    key: PublicKey
    algorithms: frozenset[str]


def compatible_algorithms(key: object, declared: str | None = None) -> frozenset[str]:
    """The algorithms a public key may verify: from its type, narrowed to ``declared`` if given.

    Empty when the key is unusable (an unsupported type or curve, RSA under 2048 bits, or a
    declared ``alg`` that does not fit the key).
    """
    if isinstance(key, rsa.RSAPublicKey):
        fitting = _RSA_ALGORITHMS if key.key_size >= MIN_RSA_BITS else frozenset()
    elif isinstance(key, ec.EllipticCurvePublicKey):
        name = _EC_ALGORITHMS.get(key.curve.name)
        fitting = frozenset({name}) if name else frozenset()
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        fitting = frozenset({"EdDSA"})
    else:
        fitting = frozenset()
    if declared is None:
        return fitting
    return fitting & {declared}


def signing_algorithm(key: object) -> str | None:
    """The algorithm the gateway signs with for a private key of this type, or None."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= MIN_RSA_BITS:
        return "RS256"
    return None


def _public_jwk(kid: str, algorithm: str, key: PublicKey) -> dict[str, Any]:
    jwk: dict[str, Any]
    if isinstance(key, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
    jwk.pop("key_ops", None)
    return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}


class KeyRing:
    """The gateway's signing keys, loaded once: the newest signs, all are published."""

    def __init__(self, keys: Mapping[str, PrivateKey]) -> None:
        if not keys:
            raise KeyFileError("a key ring needs at least one key")
        by_kid: dict[str, VerificationKey] = {}
        jwks: list[dict[str, Any]] = []
        for kid in sorted(keys):
            private = keys[kid]
            algorithm = signing_algorithm(private)
            if algorithm is None:
                raise KeyFileError(f"key {kid}: unsupported key type")
            public = private.public_key()
            by_kid[kid] = VerificationKey(kid, public, frozenset({algorithm}))
            jwks.append(_public_jwk(kid, algorithm, public))
        self.signing_kid: str = max(keys)
        self.signing_key: PrivateKey = keys[self.signing_kid]
        self.signing_algorithm: str = next(iter(by_kid[self.signing_kid].algorithms))
        self._by_kid = by_kid
        self._only = next(iter(by_kid.values())) if len(by_kid) == 1 else None
        self._jwks = tuple(jwks)
        self._oldest = keys[min(keys)]

    @classmethod
    def load(cls, directory: Path, algorithm: str | None = None) -> KeyRing:
        """Load every ``*.pem`` in ``directory``; raise ``KeyFileError`` naming a bad file.

        ``algorithm`` (the configured one) is only checked for support: each key's own type
        decides how it signs and verifies.
        """
        if algorithm is not None and algorithm not in SIGNING_ALGORITHMS:
            raise KeyFileError(f"unsupported signing algorithm {algorithm!r}")
        return cls.from_pems(read_key_files(directory), directory)

    @classmethod
    def from_pems(cls, pems: Mapping[str, bytes], directory: Path) -> KeyRing:
        """The ring of PEM texts by kid (as ``read_key_files`` returns them); errors name
        ``directory/<kid>.pem``."""
        if not pems:
            raise KeyFileError(f"{directory}: no signing keys (run `gateway keys generate`)")
        return cls(
            {kid: _parse_private_key(pem, directory / f"{kid}.pem") for kid, pem in pems.items()}
        )

    @property
    def kids(self) -> tuple[str, ...]:
        """Every kid, oldest first."""
        return tuple(self._by_kid)

    def public_key(self, kid: str | None) -> VerificationKey | None:
        """The key named ``kid`` (a dictionary lookup only); without a kid, the only key."""
        if kid is None:
            return self._only
        return self._by_kid.get(kid)

    async def get(self, kid: str | None) -> VerificationKey | None:
        """``KeySource`` for the verifier: the same lookup as ``public_key``."""
        return self.public_key(kid)

    def derive_secret(self, purpose: bytes) -> bytes:
        """A 32-byte secret for ``purpose``, the same on every replica sharing these keys.

        HKDF-SHA256 over the oldest key, which a rotation (a newer key) leaves alone: only
        deleting that key changes the secret. ``purpose`` keeps each use's secret apart."""
        material = self._oldest.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(material)

    def jwks(self) -> dict[str, Any]:
        """The public keys as an RFC 7517 JWK Set (a fresh dict on each call)."""
        return {"keys": [dict(jwk) for jwk in self._jwks]}


def _is_key_file(path: Path) -> bool:
    if path.name.startswith("."):
        return False  # a temporary file of generate_key, or an editor's
    if not _KID.match(path.stem):
        raise KeyFileError(f"{path}: file name is not a valid kid (letters, digits, . _ -)")
    return True


def read_key_files(directory: Path) -> dict[str, bytes]:
    """The PEM text of every key file in ``directory``, by kid; ``KeyFileError`` naming a file
    that cannot be read. Nothing is parsed here."""
    try:
        paths = sorted(directory.glob("*.pem"))
    except OSError as error:
        raise KeyFileError(f"{directory}: cannot list keys ({error.strerror})") from None
    pems: dict[str, bytes] = {}
    for path in paths:
        if _is_key_file(path):
            try:
                pems[path.stem] = path.read_bytes()
            except OSError as error:
                raise KeyFileError(f"{path}: cannot read key file ({error.strerror})") from None
    return pems


def _parse_private_key(data: bytes, path: Path) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, NotImplementedError):
        # Never include the library's message: nothing about the file's content is shown.
        raise KeyFileError(f"{path}: not an unencrypted PEM private key") from None
    except Exception:  # cryptography's UnsupportedAlgorithm and kin
        raise KeyFileError(f"{path}: unsupported private key") from None
    if not isinstance(key, _PRIVATE_TYPES) or signing_algorithm(key) is None:
        raise KeyFileError(
            f"{path}: unsupported key type (use Ed25519, EC P-256 or RSA of at least 2048 bits)"
        )
    return key


def _new_private_key(algorithm: str) -> PrivateKey:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise KeyFileError(f"unsupported signing algorithm {algorithm!r}")


def _new_kid(directory: Path, now: float) -> str:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    newest = max((p.stem for p in directory.glob("*.pem")), default="")
    kid = f"{stamp}-{secrets.token_hex(2)}"
    if kid > newest:
        return kid
    # The newest key is from this same second (or the clock went back): extend its kid, which
    # sorts right after it, so the key just generated is the one that signs, as promised.
    return f"{newest}-{secrets.token_hex(2)}"


def generate_key(directory: Path, algorithm: str, *, clock: Callable[[], float] = time.time) -> str:
    """Write a new private key (mode 0600, directory 0700) atomically; return its kid."""
    key = _new_private_key(algorithm)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        kid = _new_kid(directory, clock())
        # mkstemp creates the file 0600; the rename makes the key appear whole or not at all, so
        # a concurrent load (another worker reloading) never reads half a key.
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, directory / f"{kid}.pem")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as error:
        raise KeyFileError(f"{directory}: cannot write a key ({error.strerror})") from None
    log.info("generated signing key %s (%s)", kid, algorithm)
    return kid


def ensure_key(directory: Path, algorithm: str) -> str | None:
    """Generate a key when ``directory`` is missing or has none; return the new kid, if any."""
    if directory.is_dir() and any(_is_key_file(p) for p in directory.glob("*.pem")):
        return None
    return generate_key(directory, algorithm)
