"""From a provider's ID-token claims to the gateway's identity: ``subject``, ``scopes_from``,
``scope_map`` and ``require`` of a ``login.providers`` entry.

The provider's token itself is not copied: only the chosen subject and the mapped scopes go
into the gateway's session, so a provider adding claims never widens what upstreams see.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.config import OidcProviderConfig
from gateway.tokenservice.users import Identity

__all__ = ["IdentityError", "RequirementFailed", "identity_from"]


class IdentityError(Exception):
    """The ID token lacks what the configuration takes the identity from (401)."""


class RequirementFailed(Exception):
    """A ``require`` claim differs: the user may not sign in here (403)."""


def identity_from(claims: Mapping[str, Any], provider: OidcProviderConfig) -> Identity:
    """The gateway identity the claims give; raises ``IdentityError`` or ``RequirementFailed``."""
    for name, expected in provider.require:
        if claims.get(name) != expected:
            raise RequirementFailed(f"this account's {name} does not allow signing in here")
    sub = claims.get(provider.subject)
    if not isinstance(sub, str) or not sub:
        raise IdentityError(f"the ID token has no string {provider.subject!r} claim")
    return Identity(sub, " ".join(scopes_from(claims, provider)), MappingProxyType({}))


def scopes_from(claims: Mapping[str, Any], provider: OidcProviderConfig) -> list[str]:
    """The session's scopes: the ``scopes_from`` claim's values, mapped by ``scope_map``."""
    if provider.scopes_from is None:
        return []
    value = claims.get(provider.scopes_from)
    if isinstance(value, str):
        values = value.split()
    elif isinstance(value, list):
        values = [v for v in value if isinstance(v, str)]
    else:
        values = []
    if provider.scope_map is not None:
        mapping = dict(provider.scope_map)
        values = [scope for v in values for scope in mapping.get(v, ())]
    # A scope is one token of a space-separated list: a value with a space would become two.
    result: list[str] = []
    for scope in values:
        if scope and not any(c.isspace() for c in scope) and scope not in result:
            result.append(scope)
    return result
