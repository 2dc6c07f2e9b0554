"""External issuers' key sets (JWKS), fetched, parsed once and cached by kid.

Security reasoning:

- Keys come only from the configured ``jwks_uri`` or ``jwks_file``. A token's ``jku``, ``x5u``,
  ``jwk`` or ``x5c`` header is never read: following it would let the token name its own key.
- Symmetric (``oct``) keys, encryption keys (``use`` other than ``sig``), keys whose ``alg`` is
  not an asymmetric signature algorithm, RSA keys under 2048 bits and private keys are skipped:
  an HMAC secret in a JWKS would be public, so anything it verified would be forgeable.
- An IdP that is down, slow or answers garbage never empties the cache: the last good set keeps
  serving, and the failure is kept in ``last_error`` for ``/readyz`` and the logs.
- An unknown ``kid`` (a key rotated at the IdP) triggers a refetch, but at most one per
  ``refetch_interval`` (30 s) per issuer, and concurrent lookups share the one fetch in flight:
  a flood of tokens with random kids cannot turn the gateway into a load generator for the IdP.

As Envoy's JWKS fetcher does, the periodic refresh waits ``refresh_interval`` after a success and
a shorter, doubling ``retry_interval`` after a failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import jwt

from gateway.auth.keys import VERIFY_ALGORITHMS, VerificationKey, compatible_algorithms

__all__ = ["MAX_JWKS_BYTES", "JwksError", "JwksSource", "parse_jwks", "read_capped"]

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024
_ASYMMETRIC_KTY = frozenset({"RSA", "EC", "OKP"})


class JwksError(Exception):
    """A JWK Set that cannot be fetched, read or used."""


def parse_jwks(document: object) -> tuple[VerificationKey, ...]:
    """The usable signature keys of a JWK Set; raise ``JwksError`` if there are none."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("not a JWK Set (an object with a 'keys' list)")
    keys: list[VerificationKey] = []
    seen: set[str | None] = set()
    for jwk in document["keys"]:
        key = _parse_jwk(jwk)
        if key is None:
            continue
        if key.kid in seen:
            log.warning("JWK Set repeats a kid; the first key with it is used")
            continue
        seen.add(key.kid)
        keys.append(key)
    if not keys:
        raise JwksError("the JWK Set has no usable signature key")
    return tuple(keys)


def _parse_jwk(jwk: object) -> VerificationKey | None:
    if not isinstance(jwk, dict):
        return None
    kid, alg, use = jwk.get("kid"), jwk.get("alg"), jwk.get("use")
    if jwk.get("kty") not in _ASYMMETRIC_KTY or (use is not None and use != "sig"):
        return None
    if (kid is not None and not isinstance(kid, str)) or "d" in jwk:
        return None
    if alg is not None and alg not in VERIFY_ALGORITHMS:
        return None
    try:
        parsed = jwt.PyJWK(jwk, algorithm=alg)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    algorithms = compatible_algorithms(parsed.key, alg)
    if not algorithms:
        return None
    return VerificationKey(kid, parsed.key, algorithms)


class JwksSource:
    """The key set of one external issuer, from a ``jwks_uri`` or a ``jwks_file``."""

    def __init__(
        self,
        issuer: str,
        *,
        keys: Iterable[VerificationKey] = (),
        uri: str | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timeout: float = 5.0,
        refresh_interval: float = 600.0,
        retry_interval: float = 2.0,
        max_retry_interval: float = 60.0,
        refetch_interval: float = 30.0,
    ) -> None:
        if uri is not None and client is None:
            raise ValueError("a jwks_uri source needs an httpx.AsyncClient")
        self.issuer = issuer
        self.uri = uri
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._timeout = httpx.Timeout(timeout)
        self._refresh_interval = refresh_interval
        self._retry_interval = retry_interval
        self._max_retry_interval = max_retry_interval
        self._refetch_interval = refetch_interval
        self._by_kid: dict[str | None, VerificationKey] = {}
        self._only: VerificationKey | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._last_refetch: float | None = None
        self._ready = False
        self.last_error: str | None = None
        self._failed = asyncio.Event()  # a fetch failed: the refresh loop retries sooner
        self.fetches = 0
        initial = tuple(keys)
        if initial:
            self._install(initial)

    @classmethod
    def from_file(cls, issuer: str, path: Path) -> JwksSource:
        """Read a JWK Set file once; raise ``JwksError`` with a one-line reason."""
        try:
            data = path.read_bytes()
        except OSError as error:
            raise JwksError(f"{path}: cannot read JWK Set ({error.strerror})") from None
        return cls.from_bytes(issuer, data, path)

    @classmethod
    def from_bytes(cls, issuer: str, data: bytes, path: Path) -> JwksSource:
        """A JWK Set file's content, read before; errors name ``path``."""
        try:
            keys = parse_jwks(json.loads(data))
        except (ValueError, RecursionError):
            raise JwksError(f"{path}: not valid JSON") from None
        except JwksError as error:
            raise JwksError(f"{path}: {error}") from None
        return cls(issuer, keys=keys)

    @classmethod
    def from_uri(
        cls, issuer: str, uri: str, client: httpx.AsyncClient, **options: Any
    ) -> JwksSource:
        """A source fetched from ``uri`` with the shared ``client`` (nothing is fetched yet)."""
        return cls(issuer, uri=uri, client=client, **options)

    @property
    def ready(self) -> bool:
        """True once a key set is in hand (read from the file, or fetched once)."""
        return self._ready

    @property
    def kids(self) -> tuple[str | None, ...]:
        return tuple(self._by_kid)

    def _install(self, keys: tuple[VerificationKey, ...]) -> None:
        self._by_kid = {key.kid: key for key in keys}
        self._only = keys[0] if len(keys) == 1 else None
        self._ready = True

    def _lookup(self, kid: str | None) -> VerificationKey | None:
        if kid is None:
            return self._only
        return self._by_kid.get(kid)

    async def get(self, kid: str | None) -> VerificationKey | None:
        """The key for ``kid``; an unknown kid may refetch the set (once per 30 s at most)."""
        key = self._lookup(kid)
        if key is not None or self.uri is None:
            return key
        if self._inflight is None:
            now = self._clock()
            if self._last_refetch is not None and now - self._last_refetch < self._refetch_interval:
                return None
            self._last_refetch = now
        await self.refresh()
        return self._lookup(kid)

    async def refresh(self) -> bool:
        """Fetch the set now, or join the fetch in flight; True when it succeeded."""
        if self.uri is None:
            return True
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch())
        # shield: a request that gives up must not cancel the fetch other lookups are awaiting.
        return await asyncio.shield(self._inflight)

    async def run_refresh_loop(self) -> None:
        """Refresh forever (run as a task; cancel it to stop): long waits after success."""
        if self.uri is None:
            return
        retry = self._retry_interval
        while True:
            if await self.refresh():
                retry = self._retry_interval
                if not await self._rest(self._refresh_interval):
                    continue
            await self._sleep(retry)
            retry = min(retry * 2, self._max_retry_interval)

    async def _rest(self, seconds: float) -> bool:
        """Wait ``seconds`` after a success, or less: True as soon as a fetch made meanwhile
        (an unknown kid's) fails, so that the retries start at once rather than after the
        long wait, and a key set that came back is taken up (and ``/readyz`` clears) soon."""
        self._failed.clear()
        failed = asyncio.ensure_future(self._failed.wait())
        rest = asyncio.ensure_future(self._sleep(seconds))
        try:
            done, _ = await asyncio.wait({failed, rest}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            rest.cancel()
        if rest in done:
            rest.result()
            return False
        return True

    async def _fetch(self) -> bool:
        assert self.uri is not None and self._client is not None
        self.fetches += 1
        try:
            keys = parse_jwks(json.loads(await self._download(self.uri, self._client)))
        except (httpx.HTTPError, httpx.InvalidURL, JwksError, ValueError, RecursionError) as error:
            reason = _describe(error)
        except Exception as error:  # never let an IdP's answer take the gateway down
            reason = f"unexpected {type(error).__name__}"
        else:
            self._install(keys)
            self.last_error = None
            return True
        finally:
            self._inflight = None
        self.last_error = reason
        self._failed.set()
        log.warning(
            "JWKS fetch for issuer %s failed (%s); keeping %d known keys",
            self.issuer,
            reason,
            len(self._by_kid),
        )
        return False

    async def _download(self, uri: str, client: httpx.AsyncClient) -> bytes:
        headers = {"Accept": "application/json"}
        # Redirects are not followed whatever the shared client's default: the configured URL
        # (https, or loopback http) is the only place keys may come from.
        async with client.stream(
            "GET", uri, headers=headers, timeout=self._timeout, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise JwksError(f"HTTP {response.status_code}")
            body = await read_capped(response, MAX_JWKS_BYTES)
        if body is None:
            raise JwksError("JWK Set larger than 1 MiB")
        return body


async def read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """A streamed answer's body; None once it grows past ``limit`` bytes (the rest is never
    read). For every document fetched from an identity provider: a hostile or broken one must
    not be able to fill a worker's memory."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _describe(error: Exception) -> str:
    if isinstance(error, JwksError):
        return str(error)
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.HTTPError):
        return f"{type(error).__name__}"
    return "not valid JSON"
