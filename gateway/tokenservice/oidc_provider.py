"""One OpenID provider as the gateway knows it: its discovery document and its key set.

Discovery runs at start in the background: a provider that is down does not stop ``serve``;
``/readyz`` names it until its document has been fetched once, and the fetch is retried (2 s,
doubling up to 60 s). Then its JWKS is kept by ``JwksSource`` (refreshed every 10 min, refetched
on an unknown ``kid``), as for trusted issuers.

Security reasoning: the document must name the configured issuer (OIDC Discovery 1.0, 4.3), or
a document served from elsewhere could point the gateway at another issuer's keys; every
endpoint it names must be https, or plain http on a loopback host, as the issuer itself; the
ID-token algorithms are those it advertises, restricted to the asymmetric ones the gateway
verifies. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.auth.jwks import JwksSource, read_capped
from gateway.auth.keys import VERIFY_ALGORITHMS
from gateway.config import OidcProviderConfig
from gateway.config.providers import is_safe_fetch_url
from gateway.tokenservice.oidc_tokens import TokenRules

__all__ = ["Discovery", "DiscoveryError", "OidcProvider"]

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 256 * 1024


class DiscoveryError(Exception):
    """A discovery document that cannot be fetched or used."""


@dataclass(frozen=True, slots=True)
class Discovery:
    """What the gateway uses of a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: frozenset[str]


def read_discovery(document: Any, configured_issuer: str) -> Discovery:
    """The parts of ``document`` the gateway needs; ``DiscoveryError`` when it is unusable."""
    if not isinstance(document, dict):
        raise DiscoveryError("the discovery document is not a JSON object")
    issuer = document.get("issuer")
    if not isinstance(issuer, str) or issuer.rstrip("/") != configured_issuer.rstrip("/"):
        raise DiscoveryError(f"the discovery document names another issuer ({issuer!r})")
    endpoints: dict[str, str] = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        if not isinstance(value, str) or not is_safe_fetch_url(value):
            raise DiscoveryError(f"{name} is missing, or not https (loopback http only)")
        endpoints[name] = value
    advertised = document.get("id_token_signing_alg_values_supported", ["RS256"])
    if not isinstance(advertised, list):
        advertised = []
    algorithms = frozenset(a for a in advertised if isinstance(a, str)) & VERIFY_ALGORITHMS
    if not algorithms:
        raise DiscoveryError("the provider signs ID tokens with no algorithm the gateway accepts")
    return Discovery(issuer=issuer, algorithms=algorithms, **endpoints)


class OidcProvider:
    """A configured provider: discovered once in the background, its keys kept fresh."""

    def __init__(
        self,
        config: OidcProviderConfig,
        http: httpx.AsyncClient,
        *,
        leeway: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.http = http
        self.leeway = leeway
        self.discovery: Discovery | None = None
        self.keys: JwksSource | None = None
        self.last_error: str | None = None
        self._sleep = sleep

    @property
    def ready(self) -> bool:
        """True once the discovery document has been fetched."""
        return self.discovery is not None

    def rules(self) -> TokenRules | None:
        """How this provider's tokens are checked, once it is discovered."""
        if self.discovery is None or self.keys is None:
            return None
        return TokenRules(
            issuer=self.discovery.issuer,
            client_id=self.config.client_id,
            algorithms=self.discovery.algorithms,
            keys=self.keys,
            leeway=self.leeway,
        )

    async def discover(self) -> bool:
        """Fetch the discovery document and the key set once; True on success."""
        try:
            document = json.loads(await self._download(self.config.discovery_url))
            discovery = read_discovery(document, self.config.issuer)
        except (httpx.HTTPError, httpx.InvalidURL, DiscoveryError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, DiscoveryError) else type(exc).__name__
            if reason != self.last_error:
                log.warning("discovery of provider %s failed: %s", self.config.name, reason)
            self.last_error = reason
            return False
        keys = JwksSource.from_uri(discovery.issuer, discovery.jwks_uri, self.http)
        await keys.refresh()  # a failure here is retried on the first ID token (unknown kid)
        self.keys, self.discovery, self.last_error = keys, discovery, None
        log.info("provider %s discovered (%s)", self.config.name, discovery.issuer)
        return True

    async def run(self) -> None:
        """Discover (retrying with back-off), then keep the key set fresh; run as a task."""
        retry = 2.0
        while not await self.discover():
            await self._sleep(retry)
            retry = min(retry * 2, 60.0)
        assert self.keys is not None
        await self.keys.run_refresh_loop()

    async def _download(self, url: str) -> bytes:
        async with self.http.stream(
            "GET", url, headers={"accept": "application/json"}, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise DiscoveryError(f"HTTP {response.status_code} from {url}")
            body = await read_capped(response, MAX_DOCUMENT_BYTES)
        if body is None:
            raise DiscoveryError("the discovery document is larger than 256 KiB")
        return body
