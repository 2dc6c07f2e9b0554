"""The ``identity_headers`` and ``identity_assertion`` sections: how upstreams learn who calls.

Both name headers the gateway writes on the way upstream and always removes from clients, so
neither may take over a header the gateway already owns, frames or routes by.
"""

from __future__ import annotations

from typing import Any

from gateway.config.model import Config, IdentityAssertionConfig
from gateway.config.owned_headers import FORWARDING, HOP_BY_HOP, OWNED_UPSTREAM, REROUTING
from gateway.config.reader import TOKEN_CHARS, Reader
from gateway.config.units import parse_duration
from gateway.config.yaml_source import Path_

_NOT_ASSERTION = frozenset(
    {*OWNED_UPSTREAM, *(n.decode() for n in HOP_BY_HOP | FORWARDING | REROUTING)}
)


class IdentityChecks(Reader):
    """Builds the identity sections, recording every problem with its line."""

    def identity_headers(self, top: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        if "identity_headers" not in top:
            return Config.identity_headers
        value = top["identity_headers"]
        p: Path_ = ("identity_headers",)
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.error(p, "identity_headers must be a mapping of header name to claim")
            return ()
        result: list[tuple[str, str]] = []
        for header, claim in value.items():
            name = header.lower().replace("_", "-")
            if not TOKEN_CHARS.match(header) or name in OWNED_UPSTREAM:
                self.error((*p, header), f"identity_headers: {header!r} cannot be used")
            if not isinstance(claim, str) or not claim:
                self.error((*p, header), f"identity_headers: {header!r} must name a claim")
                continue
            result.append((name, claim))
        return tuple(result)

    def identity_assertion(
        self, value: Any, identity: tuple[tuple[str, str], ...]
    ) -> IdentityAssertionConfig | None:
        if value is None:
            return None
        p: Path_ = ("identity_assertion",)
        d = IdentityAssertionConfig()
        m = self.section(value, p, frozenset({"header", "ttl"}))
        header = self.get(m, p, "header", self.string, d.header)
        name = header.lower().replace("_", "-")
        if not TOKEN_CHARS.match(header) or name in _NOT_ASSERTION:
            self.error((*p, "header"), f"identity_assertion: header {header!r} cannot be used")
        elif any(name == taken for taken, _ in identity):
            self.error((*p, "header"), f"identity_assertion: {header!r} is an identity header")
        ttl = self.get(m, p, "ttl", parse_duration, d.ttl)
        if not 1 <= ttl <= 86400:
            self.error((*p, "ttl"), "identity_assertion: ttl must be from 1s to 24h")
        return IdentityAssertionConfig(header=name, ttl=ttl)
