"""The ``identity_assertion`` section and the per-route switch."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, IdentityAssertionConfig
from tests.configs import build_config, route

UP = "http://127.0.0.1:9000"


def problems(**sections: object) -> str:
    with pytest.raises(ConfigError) as info:
        build_config(routes=[route("a", "/a", UP)], **sections)
    return "\n".join(info.value.problems)


def test_the_assertion_is_off_unless_configured() -> None:
    assert build_config(routes=[route("a", "/a", UP)]).identity_assertion is None


def test_an_empty_section_turns_it_on_with_the_defaults() -> None:
    config = build_config(routes=[route("a", "/a", UP)], identity_assertion={})
    assert config.identity_assertion == IdentityAssertionConfig("x-gateway-assertion", 60.0)


def test_the_header_and_ttl_are_read() -> None:
    config = build_config(
        routes=[route("a", "/a", UP)], identity_assertion={"header": "X_Identity", "ttl": "5m"}
    )
    assert config.identity_assertion == IdentityAssertionConfig("x-identity", 300.0)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Authorization", id="owned by the gateway"),
        pytest.param("X-Forwarded-For", id="forwarding"),
        pytest.param("Connection", id="hop-by-hop"),
        pytest.param("X-Original-URL", id="rerouting"),
        pytest.param("Bad Header", id="not a header name"),
    ],
)
def test_a_header_the_gateway_controls_cannot_carry_the_assertion(header: str) -> None:
    assert "cannot be used" in problems(identity_assertion={"header": header})


def test_the_assertion_cannot_share_an_identity_headers_name() -> None:
    found = problems(identity_assertion={"header": "X-Auth-Subject"})
    assert "is an identity header" in found


@pytest.mark.parametrize("ttl", ["500ms", "2d"])
def test_a_ttl_outside_one_second_to_a_day_is_refused(ttl: str) -> None:
    assert "ttl must be from 1s to 24h" in problems(identity_assertion={"ttl": ttl})


def test_an_unknown_key_in_the_section_is_reported() -> None:
    assert "unknown key 'algorithm'" in problems(identity_assertion={"algorithm": "RS256"})


def test_a_route_may_turn_the_assertion_off() -> None:
    config = build_config(
        identity_assertion={},
        routes=[route("a", "/a", UP), route("b", "/b", UP, identity_assertion=False)],
    )
    assert [r.identity_assertion for r in config.routes] == [True, False]
