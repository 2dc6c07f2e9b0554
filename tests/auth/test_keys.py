"""KeyRing and key files: generate, load, rotate, publish."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth import KeyFileError, KeyRing, ensure_key, generate_key

from .conftest import NOW, Clock


def write_pem(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.mark.parametrize(
    ("algorithm", "kty"),
    [
        pytest.param("EdDSA", "OKP", id="an EdDSA key is Ed25519"),
        pytest.param("ES256", "EC", id="an ES256 key is P-256"),
        pytest.param("RS256", "RSA", id="an RS256 key is RSA"),
    ],
)
def test_generated_key_loads_and_signs_with_its_algorithm(
    keys_dir: Path, algorithm: str, kty: str
) -> None:
    kid = generate_key(keys_dir, algorithm)
    ring = KeyRing.load(keys_dir, algorithm)
    assert (ring.signing_kid, ring.signing_algorithm) == (kid, algorithm)
    assert ring.jwks()["keys"][0]["kty"] == kty


def test_kid_is_a_utc_timestamp_with_a_suffix(keys_dir: Path) -> None:
    kid = generate_key(keys_dir, "EdDSA", clock=Clock(NOW))
    assert kid.startswith("20270115T080000Z-") and len(kid) == len("20270115T080000Z-3f9a")


def test_newest_key_signs_and_all_are_published(keys_dir: Path) -> None:
    clock = Clock(NOW)
    kids = []
    for algorithm in ("EdDSA", "ES256", "EdDSA"):
        kids.append(generate_key(keys_dir, algorithm, clock=clock))
        clock.advance(86400)
    ring = KeyRing.load(keys_dir, "EdDSA")
    assert ring.signing_kid == kids[-1]
    assert ring.kids == tuple(kids)
    assert [jwk["kid"] for jwk in ring.jwks()["keys"]] == kids


def test_two_keys_in_the_same_second_still_rotate(keys_dir: Path) -> None:
    clock = Clock(NOW)
    kids = [generate_key(keys_dir, "EdDSA", clock=clock) for _ in range(20)]
    assert KeyRing.load(keys_dir).signing_kid == kids[-1]


def test_an_older_key_of_another_algorithm_is_published_with_its_own_alg(keys_dir: Path) -> None:
    clock = Clock(NOW)
    old = generate_key(keys_dir, "ES256", clock=clock)
    clock.advance(60)
    generate_key(keys_dir, "EdDSA", clock=clock)
    ring = KeyRing.load(keys_dir, "EdDSA")
    published = {jwk["kid"]: jwk for jwk in ring.jwks()["keys"]}
    assert published[old]["alg"] == "ES256"
    assert ring.signing_algorithm == "EdDSA"


def test_jwks_has_the_rfc7517_members_and_no_private_part(keys_dir: Path) -> None:
    for algorithm in ("EdDSA", "ES256", "RS256"):
        generate_key(keys_dir, algorithm)
    for jwk in KeyRing.load(keys_dir).jwks()["keys"]:
        assert {"kid", "kty", "alg", "use"} <= jwk.keys() and jwk["use"] == "sig"
        assert "d" not in jwk and not {"p", "q", "dp", "dq", "qi"} & jwk.keys()


def test_jwks_returns_a_fresh_document_each_time(keys_dir: Path) -> None:
    generate_key(keys_dir, "EdDSA")
    ring = KeyRing.load(keys_dir)
    ring.jwks()["keys"][0]["kid"] = "changed"
    assert ring.jwks()["keys"][0]["kid"] == ring.signing_kid


def test_key_file_is_0600_and_directory_0700(keys_dir: Path) -> None:
    kid = generate_key(keys_dir, "EdDSA")
    assert stat.S_IMODE((keys_dir / f"{kid}.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700


def test_generation_leaves_no_temporary_file(keys_dir: Path) -> None:
    kid = generate_key(keys_dir, "ES256")
    assert [p.name for p in keys_dir.iterdir()] == [f"{kid}.pem"]


def test_temporary_files_are_not_loaded(keys_dir: Path) -> None:
    kid = generate_key(keys_dir, "EdDSA")
    (keys_dir / ".abc.pem").write_text("half a key")
    assert KeyRing.load(keys_dir).kids == (kid,)


def test_junk_pem_file_is_a_one_line_error_naming_the_file(keys_dir: Path) -> None:
    generate_key(keys_dir, "EdDSA")
    junk = keys_dir / "20200101T000000Z-dead.pem"
    junk.write_text("-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError) as caught:
        KeyRing.load(keys_dir)
    message = str(caught.value)
    assert str(junk) in message and "\n" not in message and "SECRETSTUFF" not in message


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(ec.generate_private_key(ec.SECP384R1()), id="an EC P-384 key"),
        pytest.param(
            rsa.generate_private_key(public_exponent=65537, key_size=1024), id="a 1024-bit RSA key"
        ),
    ],
)
def test_unsupported_key_type_is_an_error_naming_the_file(
    keys_dir: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> None:
    path = keys_dir / "20200101T000000Z-0001.pem"
    write_pem(path, key)
    with pytest.raises(KeyFileError, match="unsupported key type") as caught:
        KeyRing.load(keys_dir)
    assert str(path) in str(caught.value)


def test_unreadable_key_file_is_an_error_naming_the_file(keys_dir: Path) -> None:
    (keys_dir / "20200101T000000Z-0001.pem").mkdir(parents=True)  # a directory, not a file
    with pytest.raises(KeyFileError, match="cannot read") as caught:
        KeyRing.load(keys_dir)
    assert "20200101T000000Z-0001.pem" in str(caught.value)


def test_key_file_name_must_be_a_plain_kid(keys_dir: Path) -> None:
    write_pem(keys_dir / "my key!.pem", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(KeyFileError, match="not a valid kid"):
        KeyRing.load(keys_dir)


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(lambda d: None, id="a missing directory"),
        pytest.param(lambda d: d.mkdir(), id="an empty directory"),
    ],
)
def test_loading_without_keys_is_an_error(keys_dir: Path, setup: object) -> None:
    setup(keys_dir)  # type: ignore[operator]
    with pytest.raises(KeyFileError, match="no signing keys"):
        KeyRing.load(keys_dir)


def test_ensure_key_creates_the_first_key(keys_dir: Path) -> None:
    kid = ensure_key(keys_dir, "ES256")
    assert kid is not None and KeyRing.load(keys_dir).signing_kid == kid


def test_ensure_key_keeps_existing_keys(keys_dir: Path) -> None:
    kid = generate_key(keys_dir, "EdDSA")
    assert ensure_key(keys_dir, "EdDSA") is None
    assert KeyRing.load(keys_dir).kids == (kid,)


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("../../etc/passwd", id="a path traversal kid"),
        pytest.param("/etc/passwd", id="an absolute path kid"),
        pytest.param("nope", id="an unknown kid"),
    ],
)
def test_public_key_is_a_lookup_only(keys_dir: Path, kid: str) -> None:
    generate_key(keys_dir, "EdDSA")
    assert KeyRing.load(keys_dir).public_key(kid) is None


def test_without_kid_the_only_key_is_found_but_not_one_of_several(keys_dir: Path) -> None:
    clock = Clock(NOW)
    generate_key(keys_dir, "EdDSA", clock=clock)
    assert KeyRing.load(keys_dir).public_key(None) is not None
    clock.advance(5)
    generate_key(keys_dir, "EdDSA", clock=clock)
    assert KeyRing.load(keys_dir).public_key(None) is None


def test_unsupported_algorithm_is_refused(keys_dir: Path) -> None:
    with pytest.raises(KeyFileError, match="HS256"):
        generate_key(keys_dir, "HS256")


def test_a_key_generated_after_the_clock_went_back_still_signs(keys_dir: Path) -> None:
    generate_key(keys_dir, "EdDSA", clock=Clock(NOW))
    kid = generate_key(keys_dir, "EdDSA", clock=Clock(NOW - 3600))
    assert KeyRing.load(keys_dir).signing_kid == kid
