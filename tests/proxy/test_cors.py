"""CorsPolicy: which origins are answered, and with which headers; without_cors."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import CorsConfig
from gateway.proxy.cors import CorsPolicy, without_cors
from tests.configs import build_config

APP = b"https://app.example"
OTHER = b"https://other.example"


def policy(**cors: Any) -> CorsPolicy:
    """The policy the gateway builds from a ``cors:`` section with ``cors`` in it."""
    config = build_config(cors={"allow_origins": [APP.decode()], **cors})
    return CorsPolicy(config.cors)


def as_dict(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    assert len({name for name, _ in headers}) == len(headers), headers  # each header once
    return dict(headers)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        pytest.param(APP, True, id="a listed origin"),
        pytest.param(OTHER, False, id="an unlisted origin"),
        pytest.param(b"https://app.example/", False, id="with a trailing slash"),
        pytest.param(b"http://app.example", False, id="another scheme"),
        pytest.param(b"https://app.example:8443", False, id="another port"),
        pytest.param(b"https://APP.example", False, id="another letter case"),
        pytest.param(b"null", False, id="null"),
        pytest.param(None, False, id="no Origin"),
    ],
)
def test_allows_only_an_exactly_listed_origin(origin: bytes | None, allowed: bool) -> None:
    assert policy().allows(origin) is allowed


def test_a_configured_origin_with_a_trailing_slash_is_listed_without_it() -> None:
    config = build_config(cors={"allow_origins": ["https://app.example/"]})
    assert CorsPolicy(config.cors).allows(APP)


def test_without_a_cors_section_no_origin_is_allowed() -> None:
    assert not CorsPolicy(None).allows(APP)


def test_a_preflight_from_an_allowed_origin_gets_the_configured_answer() -> None:
    headers = as_dict(
        policy(
            allow_methods=["get", "POST"],
            allow_headers=["Authorization", "X-Trace"],
            max_age=120,
        ).preflight(APP)
    )
    assert headers == {
        b"access-control-allow-origin": APP,
        b"access-control-allow-methods": b"GET, POST",
        b"access-control-allow-headers": b"authorization, x-trace",
        b"access-control-max-age": b"120",
        b"vary": b"Origin",
    }


def test_a_preflight_gets_the_default_methods_headers_and_max_age() -> None:
    headers = as_dict(policy().preflight(APP))
    defaults = CorsConfig()
    assert headers[b"access-control-allow-methods"] == ", ".join(defaults.allow_methods).encode()
    assert headers[b"access-control-allow-headers"] == ", ".join(defaults.allow_headers).encode()
    assert headers[b"access-control-max-age"] == str(defaults.max_age).encode()


@pytest.mark.parametrize(
    "origin",
    [pytest.param(OTHER, id="an unlisted origin"), pytest.param(None, id="no Origin")],
)
def test_a_preflight_from_an_origin_not_allowed_gets_only_vary(origin: bytes | None) -> None:
    assert policy(allow_credentials=True).preflight(origin) == [(b"vary", b"Origin")]


def test_the_allowed_origin_is_echoed_never_a_wildcard() -> None:
    assert as_dict(policy().preflight(APP))[b"access-control-allow-origin"] == APP
    assert as_dict(policy().response(APP))[b"access-control-allow-origin"] == APP


def test_a_response_to_an_allowed_origin_exposes_the_configured_headers() -> None:
    headers = as_dict(policy(expose_headers=["X-Request-Id", "ETag"]).response(APP))
    assert headers == {
        b"access-control-allow-origin": APP,
        b"access-control-expose-headers": b"x-request-id, etag",
        b"vary": b"Origin",
    }


def test_a_response_exposes_nothing_when_no_headers_are_exposed() -> None:
    headers = as_dict(policy(expose_headers=[]).response(APP))
    assert b"access-control-expose-headers" not in headers


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda p: p.preflight(APP), id="preflight"),
        pytest.param(lambda p: p.response(APP), id="response"),
    ],
)
def test_credentials_are_allowed_only_when_configured(answer: Any) -> None:
    with_credentials = as_dict(answer(policy(allow_credentials=True)))
    assert with_credentials[b"access-control-allow-credentials"] == b"true"
    without = as_dict(answer(policy()))
    assert b"access-control-allow-credentials" not in without


def test_without_cors_removes_every_access_control_header_and_keeps_the_rest() -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"access-control-allow-origin", b"*"),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"x-secret"),
        (b"vary", b"Accept"),
    ]
    assert without_cors(headers) == [(b"content-type", b"application/json"), (b"vary", b"Accept")]
