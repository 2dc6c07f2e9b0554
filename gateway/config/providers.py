"""Validation of ``login.providers``: the OpenID Connect providers users may sign in with.

A provider's name is a URL segment (``/auth/oidc/{name}/...``), so it is restricted to a safe
alphabet. Its issuer is fetched (discovery), so plain http is refused except for loopback hosts,
as for trusted issuers' key sets. ``openid`` is always among the scopes asked for: without it the
provider answers with OAuth alone and no ID token.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from gateway.config.model import LoginConfig, OidcProviderConfig
from gateway.config.reader import NO_STRINGS, Reader
from gateway.config.yaml_source import Path_

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_PROVIDER_KEYS = frozenset(
    {
        "name",
        "issuer",
        "client_id",
        "client_secret",
        "scopes",
        "subject",
        "scopes_from",
        "scope_map",
        "require",
        "backchannel_logout",
    }
)


def is_safe_fetch_url(url: str) -> bool:
    """https, or plain http to a loopback host (a local test provider)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoginChecks(Reader):
    """Builds ``LoginConfig`` from the ``login`` section."""

    def login(self, value: Any, *, users_given: bool) -> LoginConfig:
        p: Path_ = ("login",)
        m = self.section(value, p, frozenset({"providers"}))
        raw = m.get("providers")
        if raw is None:
            return LoginConfig()
        if not isinstance(raw, list):
            self.error((*p, "providers"), "login.providers must be a list")
            return LoginConfig()
        providers: list[OidcProviderConfig] = []
        seen: set[str] = set()
        for index, item in enumerate(raw):
            provider = self.provider(item, (*p, "providers", index))
            if provider is None:
                continue
            if provider.name in seen:
                self.error((*p, "providers", index, "name"), f"provider {provider.name!r} twice")
            seen.add(provider.name)
            providers.append(provider)
        # Without a ``users`` section, a gateway that signs in through providers shows no
        # password form: an operator who meant SSO only should not get a default users file.
        return LoginConfig(providers=tuple(providers), password_form=users_given or not providers)

    def provider(self, item: Any, p: Path_) -> OidcProviderConfig | None:
        m = self.section(item, p, _PROVIDER_KEYS)
        if not m:
            if item is not None and not isinstance(item, dict):
                return None
            self.error(p, "login provider: name, issuer and client_id are required")
            return None
        name = self.get(m, p, "name", self.string, "")
        issuer = self.get(m, p, "issuer", self.http_url, "")
        client_id = self.get(m, p, "client_id", self.string, "")
        for key, got in (("name", name), ("issuer", issuer), ("client_id", client_id)):
            if not got:
                self.error(p, f"login provider: {key} is required")
        if name and not _NAME.match(name):
            self.error(
                (*p, "name"),
                f"name: {name!r} must be 1-32 of a-z, 0-9, '-', '_' (it is a URL segment)",
            )
        if issuer and not is_safe_fetch_url(issuer):
            self.error(
                (*p, "issuer"), "issuer: plain http is refused except for loopback hosts; use https"
            )
        secret = self.get(m, p, "client_secret", self.string, None)
        default_scopes: tuple[str, ...] = ("openid", "profile", "email")
        scopes = self.get(m, p, "scopes", self.string_list, default_scopes)
        if "openid" not in scopes:
            scopes = ("openid", *scopes)
        return OidcProviderConfig(
            name=name,
            issuer=issuer,
            client_id=client_id,
            client_secret=secret or None,
            scopes=scopes,
            subject=self.get(m, p, "subject", self.string, "sub"),
            scopes_from=self.get(m, p, "scopes_from", self.string, None),
            scope_map=self.scope_map(m.get("scope_map"), (*p, "scope_map")),
            require=self.require(m.get("require"), (*p, "require")),
            backchannel_logout=self.get(m, p, "backchannel_logout", self.boolean, False),
            secret_in_file=secret is not None and (*p, "client_secret") not in self.doc.expanded,
            line=self.doc.line(p),
        )

    def scope_map(self, value: Any, p: Path_) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.error(p, "scope_map must be a mapping of claim value to a list of scopes")
            return None
        result: list[tuple[str, tuple[str, ...]]] = []
        for key in value:
            scopes = self.get(value, p, key, self.string_list, NO_STRINGS)
            bad = [s for s in scopes if not s or any(c.isspace() for c in s)]
            if bad:
                self.error((*p, key), f"scope_map: {bad[0]!r} is not a scope")
            result.append((str(key), scopes))
        return tuple(result)

    def require(self, value: Any, p: Path_) -> tuple[tuple[str, Any], ...]:
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.error(p, "require must be a mapping of claim name to value")
            return ()
        return tuple(value.items())
