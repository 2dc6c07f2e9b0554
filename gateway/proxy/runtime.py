"""Everything a request needs, built once from one configuration; reload swaps the whole object.

``Runtime`` is immutable from the request's point of view: a request in flight keeps the
``Runtime`` it started with, so a reload never changes the rules under it.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from gateway.auth.assertion import IdentityAsserter
from gateway.auth.jwks import JwksSource
from gateway.auth.keys import KeyRing
from gateway.auth.verifier import IssuerPolicy, Verifier
from gateway.config import Config
from gateway.http.pool import UpstreamPool
from gateway.http.target import Target
from gateway.proxy.access import RouteAccess
from gateway.proxy.cors import CorsPolicy
from gateway.proxy.headers import HeaderPolicy
from gateway.proxy.origins import OriginCheck
from gateway.proxy.routing import RouteTable


@dataclass(frozen=True)
class Runtime:
    """The compiled configuration plus the worker's shared clients."""

    config: Config
    table: RouteTable
    policy: HeaderPolicy
    access: Mapping[str, RouteAccess]
    targets: Mapping[str, Target]
    verifier: Verifier
    pool: UpstreamPool
    access_cookie: str | None
    cors: CorsPolicy
    origin_check: OriginCheck
    asserter: IdentityAsserter | None = None  # with ``identity_assertion`` configured


def build_verifier(
    config: Config,
    keyring: KeyRing,
    jwks: Mapping[str, JwksSource],
    revoked: Container[str] | None,
) -> Verifier:
    """The verifier for the gateway's own tokens and every trusted issuer's."""
    tokens = config.tokens
    policies = {
        tokens.issuer: IssuerPolicy.own(
            keyring,
            issuer=tokens.issuer,
            audience=tokens.audience,
            max_lifetime=max(tokens.access_ttl, 86400.0),
        )
    }
    for trusted in config.trusted_issuers:
        policies[trusted.issuer] = IssuerPolicy(
            issuer=trusted.issuer,
            audience=trusted.audience,
            algorithms=trusted.algorithms,
            max_lifetime=trusted.max_lifetime,
            required_typ=trusted.typ,
            keys=jwks[trusted.issuer],
        )
    return Verifier(
        policies,
        leeway=tokens.leeway,
        identity_headers=tuple((name.encode(), claim) for name, claim in config.identity_headers),
        revoked=revoked,
    )


def build_asserter(config: Config, keyring: KeyRing) -> IdentityAsserter | None:
    """The identity-assertion signer, when ``identity_assertion`` is configured."""
    settings = config.identity_assertion
    if settings is None:
        return None
    return IdentityAsserter(
        keyring,
        issuer=config.tokens.issuer,
        header=settings.header,
        ttl=settings.ttl,
        claims=tuple(claim for _, claim in config.identity_headers),
    )


def build_runtime(
    config: Config,
    *,
    keyring: KeyRing,
    jwks: Mapping[str, JwksSource],
    pool: UpstreamPool,
    revoked: Container[str] | None = None,
) -> Runtime:
    """Compile ``config`` into the objects the request path looks things up in."""
    routes = config.routes
    return Runtime(
        config=config,
        table=RouteTable(routes),
        policy=HeaderPolicy(config),
        access={r.name: RouteAccess.compile(r) for r in routes},
        targets={url: Target.parse(url) for r in routes for url in r.upstreams},
        verifier=build_verifier(config, keyring, jwks, revoked),
        pool=pool,
        access_cookie=config.tokens.access_cookie.name if config.tokens.access_cookie else None,
        cors=CorsPolicy(config.cors),
        origin_check=OriginCheck(
            config.server.public_origin, config.cors.allow_origins if config.cors else ()
        ),
        asserter=build_asserter(config, keyring),
    )
