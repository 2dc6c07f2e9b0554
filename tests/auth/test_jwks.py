"""JwksSource against a real HTTP server on 127.0.0.1: refetch rules, outages, rotation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth import Failure, IssuerPolicy, JwksError, JwksSource, TokenError, Verifier
from gateway.auth.jwks import MAX_JWKS_BYTES, parse_jwks
from tests.waiting import eventually_async

from .conftest import AUDIENCE, IDP, Clock, Forge, JwksServer, public_jwk


def make_verifier(source: JwksSource, clock: Clock) -> Verifier:
    policy = IssuerPolicy(
        issuer=IDP,
        audience=AUDIENCE,
        algorithms=frozenset({"RS256", "ES256", "EdDSA"}),
        max_lifetime=3600,
        required_typ=None,
        keys=source,
    )
    return Verifier({IDP: policy}, leeway=0, clock=clock)


@pytest.fixture
def source(jwks_server: JwksServer, http_client: httpx.AsyncClient, clock: Clock) -> JwksSource:
    return JwksSource.from_uri(IDP, jwks_server.url, http_client, clock=clock, timeout=0.5)


@pytest.fixture
def verifier(source: JwksSource, clock: Clock) -> Verifier:
    return make_verifier(source, clock)


# --- fetching and verifying ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("rsa-1", id="RS256 token verifies with keys from jwks_uri"),
        pytest.param("ec-1", id="ES256 token verifies with keys from jwks_uri"),
        pytest.param("ed-1", id="EdDSA token verifies with keys from jwks_uri"),
    ],
)
async def test_token_verifies_with_fetched_keys(
    source: JwksSource, verifier: Verifier, forge: Forge, kid: str
) -> None:
    assert await source.refresh()
    assert (await verifier.verify(forge.token(kid)))["sub"] == "alice"


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("rsa-1", id="RS256 token verifies with keys from jwks_file"),
        pytest.param("ec-1", id="ES256 token verifies with keys from jwks_file"),
        pytest.param("ed-1", id="EdDSA token verifies with keys from jwks_file"),
    ],
)
async def test_token_verifies_with_keys_from_a_file(
    tmp_path: Path, idp_jwks: dict[str, Any], forge: Forge, clock: Clock, kid: str
) -> None:
    path = tmp_path / "idp-jwks.json"
    path.write_text(json.dumps(idp_jwks))
    source = JwksSource.from_file(IDP, path)
    assert source.ready
    assert (await make_verifier(source, clock).verify(forge.token(kid)))["sub"] == "alice"


async def test_first_lookup_fetches_when_nothing_was_fetched_yet(
    source: JwksSource, verifier: Verifier, forge: Forge, jwks_server: JwksServer
) -> None:
    was_ready = source.ready
    assert await verifier.verify(forge.token())
    assert (was_ready, source.ready, jwks_server.fetches) == (False, True, 1)


async def test_known_kid_does_not_refetch(
    source: JwksSource, verifier: Verifier, forge: Forge, jwks_server: JwksServer
) -> None:
    await source.refresh()
    for kid in ("rsa-1", "ec-1", "rsa-1"):
        await verifier.verify(forge.token(kid, jti=kid))
    assert jwks_server.fetches == 1


# --- unknown kids -----------------------------------------------------------------------


async def test_unknown_kid_refetches_once(
    source: JwksSource, verifier: Verifier, forge: Forge, jwks_server: JwksServer
) -> None:
    await source.refresh()
    with pytest.raises(TokenError) as caught:
        await verifier.verify(forge.token("rotated-1"))
    assert caught.value.failure is Failure.UNKNOWN_KEY
    assert jwks_server.fetches == 2


async def test_second_unknown_kid_within_30s_does_not_refetch(
    source: JwksSource, verifier: Verifier, forge: Forge, jwks_server: JwksServer, clock: Clock
) -> None:
    await source.refresh()
    with pytest.raises(TokenError):
        await verifier.verify(forge.token("rotated-1"))
    clock.advance(29)
    with pytest.raises(TokenError):
        await verifier.verify(forge.token("rotated-2"))
    assert jwks_server.fetches == 2


async def test_unknown_kid_after_30s_refetches_again(
    source: JwksSource, verifier: Verifier, forge: Forge, jwks_server: JwksServer, clock: Clock
) -> None:
    await source.refresh()
    with pytest.raises(TokenError):
        await verifier.verify(forge.token("rotated-1"))
    clock.advance(30)
    with pytest.raises(TokenError):
        await verifier.verify(forge.token("rotated-2"))
    assert jwks_server.fetches == 3


async def test_concurrent_unknown_kids_share_one_fetch(
    source: JwksSource, jwks_server: JwksServer
) -> None:
    await source.refresh()
    jwks_server.delay = 0.05
    found = await asyncio.gather(*(source.get(f"unknown-{n}") for n in range(20)))
    assert found == [None] * 20
    assert jwks_server.fetches == 2


async def test_key_rotated_at_the_idp_is_picked_up_on_unknown_kid(
    source: JwksSource, verifier: Verifier, forge: Forge, jwks_server: JwksServer
) -> None:
    await source.refresh()
    new_key = ec.generate_private_key(ec.SECP256R1())
    jwks_server.jwks = {"keys": [public_jwk(new_key, "ec-2", "ES256")]}
    forge.keys["ec-2"] = ("ES256", new_key)
    assert (await verifier.verify(forge.token("ec-2")))["sub"] == "alice"
    assert jwks_server.fetches == 2
    assert source.kids == ("ec-2",)


# --- the IdP misbehaving ------------------------------------------------------------------


async def test_idp_down_keeps_the_last_good_keys(
    source: JwksSource, verifier: Verifier, forge: Forge, jwks_server: JwksServer, clock: Clock
) -> None:
    await source.refresh()
    await jwks_server.stop()
    clock.advance(60)
    assert not await source.refresh()
    with pytest.raises(TokenError):
        await verifier.verify(forge.token("rotated-1"))  # refetch attempted, connection refused
    assert (await verifier.verify(forge.token("rsa-1")))["sub"] == "alice"
    assert source.ready
    assert source.last_error == "ConnectError"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        pytest.param(500, None, "HTTP 500", id="an HTTP 500"),
        pytest.param(200, b"<html>oops</html>", "not valid JSON", id="HTML instead of JSON"),
        pytest.param(200, b'{"nokeys": []}', "not a JWK Set", id="JSON without keys"),
        pytest.param(200, b"[1, 2]", "not a JWK Set", id="a JSON array"),
        pytest.param(
            200, b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "no usable", id="only an HMAC key"
        ),
        pytest.param(200, b" " * (MAX_JWKS_BYTES + 1), "larger than 1 MiB", id="a body over 1 MiB"),
    ],
)
async def test_garbage_from_the_idp_keeps_the_last_good_keys(
    source: JwksSource,
    verifier: Verifier,
    forge: Forge,
    jwks_server: JwksServer,
    status: int,
    body: bytes | None,
    reason: str,
) -> None:
    await source.refresh()
    jwks_server.status, jwks_server.body = status, body
    assert not await source.refresh()
    assert source.last_error is not None and reason in source.last_error
    assert (await verifier.verify(forge.token("ec-1")))["sub"] == "alice"


async def test_slow_idp_times_out_and_keeps_the_last_good_keys(
    source: JwksSource, verifier: Verifier, forge: Forge, jwks_server: JwksServer
) -> None:
    await source.refresh()
    jwks_server.delay = 0.8  # the source's timeout is 0.5 s
    assert not await source.refresh()
    assert source.last_error == "timed out"
    assert await verifier.verify(forge.token("rsa-1"))


async def test_not_ready_until_a_fetch_succeeds(
    source: JwksSource, jwks_server: JwksServer
) -> None:
    jwks_server.status = 503
    assert not await source.refresh()
    was_ready = source.ready
    jwks_server.status = 200
    assert await source.refresh()
    assert (was_ready, source.ready, source.last_error) == (False, True, None)


async def test_a_cancelled_lookup_does_not_cancel_the_shared_fetch(
    source: JwksSource, jwks_server: JwksServer
) -> None:
    jwks_server.delay = 0.1
    impatient = asyncio.create_task(source.get("rsa-1"))
    patient = asyncio.create_task(source.get("ec-1"))
    await asyncio.sleep(0.02)
    impatient.cancel()
    assert (await patient) is not None
    assert jwks_server.fetches == 1


# --- the refresh loop -------------------------------------------------------------------


class StopLoop(Exception):
    pass


def recording_sleep(waits: list[float], limit: int) -> Any:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) >= limit:
            raise StopLoop

    return sleep


async def test_refresh_loop_waits_long_after_success(
    jwks_server: JwksServer, http_client: httpx.AsyncClient
) -> None:
    waits: list[float] = []
    source = JwksSource.from_uri(IDP, jwks_server.url, http_client, sleep=recording_sleep(waits, 2))
    with pytest.raises(StopLoop):
        await source.run_refresh_loop()
    assert waits == [600.0, 600.0]
    assert jwks_server.fetches == 2


async def test_refresh_loop_retries_sooner_and_backs_off_after_failures(
    jwks_server: JwksServer, http_client: httpx.AsyncClient
) -> None:
    jwks_server.status = 500
    waits: list[float] = []
    source = JwksSource.from_uri(IDP, jwks_server.url, http_client, sleep=recording_sleep(waits, 7))
    with pytest.raises(StopLoop):
        await source.run_refresh_loop()
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


async def test_refresh_loop_of_a_file_source_returns_at_once(
    idp_jwks: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(idp_jwks))
    await asyncio.wait_for(JwksSource.from_file(IDP, path).run_refresh_loop(), 1)


# --- parsing ----------------------------------------------------------------------------


def test_unusable_keys_are_skipped(rsa_key: Any, ec_key: Any) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    keys = parse_jwks(
        {
            "keys": [
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                {**public_jwk(rsa_key, "enc", "RS256"), "use": "enc"},
                {**public_jwk(rsa_key, "hs", None), "alg": "HS256"},
                public_jwk(small, "small", "RS256"),
                {**public_jwk(ec_key, "mismatch"), "alg": "RS256"},
                {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
                {"kty": "XYZ", "kid": "odd"},
                {**public_jwk(rsa_key, "private"), "d": "AQAB"},
                {**public_jwk(rsa_key, None), "kid": 7},
                "not an object",
                public_jwk(rsa_key, "good", "RS256"),
                public_jwk(ec_key, "good-ec"),
            ]
        }
    )
    assert [key.kid for key in keys] == ["good", "good-ec"]
    assert keys[1].algorithms == frozenset({"ES256"})


def test_an_rsa_key_without_alg_may_verify_any_rsa_algorithm(rsa_key: Any) -> None:
    (key,) = parse_jwks({"keys": [public_jwk(rsa_key, "k")]})
    assert {"RS256", "PS256"} <= key.algorithms and "ES256" not in key.algorithms


def test_a_set_with_no_usable_key_is_an_error() -> None:
    with pytest.raises(JwksError, match="no usable"):
        parse_jwks({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot read", id="a missing jwks_file"),
        pytest.param("{not json", "not valid JSON", id="a jwks_file that is not JSON"),
        pytest.param('{"keys": []}', "no usable", id="a jwks_file without keys"),
    ],
)
def test_bad_jwks_file_is_a_one_line_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "idp.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(JwksError) as caught:
        JwksSource.from_file(IDP, path)
    assert str(path) in str(caught.value) and message in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_a_redirect_is_not_followed(jwks_server: JwksServer, clock: Clock) -> None:
    jwks_server.redirect_to = jwks_server.url.replace("/jwks.json", "/other.json")
    async with httpx.AsyncClient(follow_redirects=True) as client:
        source = JwksSource.from_uri(IDP, jwks_server.url, client, clock=clock)
        assert not await source.refresh()
    assert source.last_error == "HTTP 302"
    assert jwks_server.other_fetches == 0


async def test_a_failed_fetch_for_an_unknown_kid_starts_the_retries_at_once(
    jwks_server: JwksServer, http_client: httpx.AsyncClient
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if seconds == 600.0:
            await asyncio.sleep(3600)  # the long wait after a success: never over in this test
        raise StopLoop

    source = JwksSource.from_uri(IDP, jwks_server.url, http_client, sleep=sleep)
    loop = asyncio.create_task(source.run_refresh_loop())
    await eventually_async(lambda: waits == [600.0])
    jwks_server.status = 500
    assert await source.get("a-kid-it-does-not-know") is None
    with pytest.raises(StopLoop):
        await asyncio.wait_for(loop, 5)
    assert waits == [600.0, 2.0]  # retrying now, not in ten minutes
