"""Assembly: the worker's ASGI application, its lifespan, and live reload.

Requests enter the pure-ASGI ``FrontDoor``; the gateway's own endpoints (``/auth/...``,
``/.well-known/...``) are handed to the Starlette token-service app ``auth_app``.

Reload: a changed ``routes.yaml``, users file or keys folder is noticed within a second (or at
once on ``SIGHUP``), compiled into a new ``Runtime`` and swapped in by one assignment. Requests
in flight hold the ``Runtime`` they started with. A file that does not load is refused, its
problems logged, and the old configuration keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from gateway.auth.jwks import JwksError, JwksSource
from gateway.auth.keys import KeyFileError, KeyRing
from gateway.auth.revocation import RevocationFeed, RevocationSet, keep_for
from gateway.config import Config, ConfigError, TrustedIssuer, load_config, missing_inputs
from gateway.http.pool import UpstreamPool
from gateway.observability import RELOADS, AccessLog, AccessRecord, publish_snapshot
from gateway.ops import degraded
from gateway.ops.inputs import Inputs
from gateway.ops.watch import Fingerprint, fingerprint
from gateway.proxy.authority import AuthorityWatch
from gateway.proxy.balancer import Balancer
from gateway.proxy.front_door import FrontDoor, new_request_id
from gateway.proxy.ratelimit import MemoryRateLimiter, RateLimiter, StoreRateLimiter
from gateway.proxy.runtime import Runtime, build_runtime
from gateway.store import RefreshStore, StoreError, StoreUnavailable, open_store
from gateway.tokenservice.endpoints import Endpoint, TokenEndpoints, error
from gateway.tokenservice.oidc_endpoints import OidcEndpoints

log = logging.getLogger("gateway")
WATCH_INTERVAL = 1.0

ReloadHook = Callable[[Config, KeyRing], None]


class GatewayApp:
    """The ASGI application of one worker process."""

    def __init__(self, inputs: Inputs, *, log_format: str = "json", workers: int = 1) -> None:
        config = inputs.config
        self.config = config
        self._inputs = inputs
        self.workers = workers
        self._runtime: Runtime | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._reload_now = asyncio.Event()
        # Taken before the files were read, so an edit made while starting is not missed.
        self._fingerprint: Fingerprint | None = inputs.loaded_from
        self._refused_inputs: dict[str, str] = {}  # input -> why its last good state serves
        self.keyring: KeyRing | None = None
        self.jwks: dict[str, JwksSource] = {}
        self._jwks_loops: dict[str, asyncio.Task[Any]] = {}
        self._jwks_settings: dict[str, TrustedIssuer] = {}
        self.http: httpx.AsyncClient | None = None
        self.store: RefreshStore | None = None
        self.reload_hooks: list[ReloadHook] = []
        self.balancer = Balancer()
        self._memory_limiter = MemoryRateLimiter()
        self._store_limiter: StoreRateLimiter | None = None
        self.tokens = TokenEndpoints()
        self.revoked = RevocationSet(keep_for(config.tokens))
        self.oidc = OidcEndpoints()
        # Open WebSockets and event streams, ended when their token's authority ends.
        self.watch = AuthorityWatch(self.revoked, leeway=config.tokens.leeway)
        self.reload_hooks.append(self.tokens.reconfigure)
        self.reload_hooks.append(self.oidc.reconfigure)
        self.auth_app = Starlette(
            routes=[
                # Every method reaches it (the catch-all after it would make the others 404).
                StarletteRoute("/.well-known/jwks.json", Endpoint(self.jwks_endpoint)),
                *self.oidc.routes,
                *self.tokens.routes,
            ]
        )
        self.access_log = AccessLog(log_format)
        self.front = FrontDoor(
            self.runtime,
            token_service=self.auth_app,
            access_log=self.access_log,
            balancer=self.balancer,
            limiter=self.limiter,
            watch=self.watch,
        )

    def runtime(self) -> Runtime:
        assert self._runtime is not None, "the lifespan has not started"
        return self._runtime

    def limiter(self) -> RateLimiter:
        """Shared counters when replicas or workers must agree, else this process's memory."""
        if self._store_limiter is not None:
            return self._store_limiter
        return self._memory_limiter

    async def jwks_endpoint(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return error(
                405,
                "method_not_allowed",
                "This endpoint does not allow the method",
                {"allow": "GET, HEAD"},
            )
        assert self.keyring is not None
        return JSONResponse(self.keyring.jwks(), headers={"cache-control": "public, max-age=300"})

    def refused(self, status: int, client: str) -> str:
        """A request the HTTP server refused before the application saw it (400, 431): one
        access-log line and a count like any other, with what little is known of it; its
        request id, for the answer to echo."""
        record = AccessRecord(
            method="-", path="-", client=client, request_id=new_request_id().decode()
        )
        record.status = status
        self.access_log.finish(record, time.perf_counter())
        return record.request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.front(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except (KeyFileError, JwksError, OSError) as exc:
                    log.error("cannot start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        config = self.config
        tokens = config.tokens
        # The supervisor's last good snapshot, not the disk: a worker started while a file is
        # broken serves what the others serve, and never creates a key (ops/inputs.py).
        self.keyring = self._inputs.keyring()
        self.http = httpx.AsyncClient(timeout=5.0)
        self._commit_jwks(config, self._prepare_jwks(config, dict(self._inputs.jwks_files)))
        self.store = open_store(
            config.store,
            base_dir=config.base_dir,
            revocation_retention=tokens.access_ttl + tokens.leeway,
        )
        shared = not config.store.startswith("sqlite") or self.workers > 1
        if shared:
            self._store_limiter = StoreRateLimiter(self.store)
        feed = RevocationFeed(self.store, self.revoked)
        self._tasks.append(asyncio.create_task(feed.run()))
        await feed.wait_first_poll()
        await self.tokens.start(
            config, self.keyring, store=self.store, http=self.http, revoked=self.revoked
        )
        self.oidc.start(
            config, self.keyring, store=self.store, http=self.http, revoked=self.revoked
        )
        self._runtime = build_runtime(
            config,
            keyring=self.keyring,
            jwks=self.jwks,
            pool=UpstreamPool(),
            revoked=self.revoked,
        )
        if self._fingerprint is None:
            self._fingerprint = fingerprint(config)
        self._tasks.append(asyncio.create_task(self._watch()))
        self.access_log.start()
        self._tasks.append(asyncio.create_task(self._publish()))
        # What startup allocated lives as long as the worker: keep it out of every collection.
        gc.collect()
        gc.freeze()
        # Every request allocates a few hundred short-lived objects; collecting the young
        # generation every 700 allocations (the default) costs ~6% of a worker's CPU.
        gc.set_threshold(20_000, 20, 20)

    def _prepare_jwks(
        self, config: Config, files: Mapping[str, bytes] | None = None
    ) -> dict[str, JwksSource]:
        """One key source per trusted issuer. A ``jwks_uri`` source whose settings did not
        change is kept (with its cache and refresh loop); ``jwks_file`` sources are re-read,
        or taken from ``files`` (issuer -> content) when given.
        Nothing is started or stopped here: ``_commit_jwks`` does that once all is well."""
        assert self.http is not None
        sources: dict[str, JwksSource] = {}
        for trusted in config.trusted_issuers:
            if trusted.jwks_file is not None and files and trusted.issuer in files:
                content = files[trusted.issuer]
                sources[trusted.issuer] = JwksSource.from_bytes(
                    trusted.issuer, content, trusted.jwks_file
                )
            elif trusted.jwks_file is not None:
                sources[trusted.issuer] = JwksSource.from_file(trusted.issuer, trusted.jwks_file)
            elif self._jwks_settings.get(trusted.issuer) == trusted:
                sources[trusted.issuer] = self.jwks[trusted.issuer]
            else:
                assert trusted.jwks_uri is not None
                sources[trusted.issuer] = JwksSource.from_uri(
                    trusted.issuer, trusted.jwks_uri, self.http
                )
        return sources

    def _commit_jwks(self, config: Config, sources: dict[str, JwksSource]) -> None:
        loops: dict[str, asyncio.Task[Any]] = {}
        for issuer, source in sources.items():
            if source.uri is None:
                continue
            kept = self._jwks_loops.pop(issuer, None)
            if kept is not None and self.jwks.get(issuer) is source:
                loops[issuer] = kept
            else:
                if kept is not None:
                    kept.cancel()
                loops[issuer] = asyncio.create_task(source.run_refresh_loop())
        for task in self._jwks_loops.values():
            task.cancel()
        self.jwks = sources
        self._jwks_loops = loops
        self._jwks_settings = {t.issuer: t for t in config.trusted_issuers}

    def request_reload(self) -> None:
        """Reload now (``SIGHUP``)."""
        self._reload_now.set()

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload_now.wait(), WATCH_INTERVAL)
            forced = self._reload_now.is_set()
            self._reload_now.clear()
            try:
                current = await asyncio.to_thread(fingerprint, self.config)
                if forced or current != self._fingerprint:
                    self._fingerprint = current
                    await self.reload()
            except Exception as exc:  # the watcher must outlive any one bad reload
                log.error("reload failed: unexpected %s", type(exc).__name__)

    async def reload(self) -> bool:
        """Load the configuration again and swap it in; keep the old one if it is broken.

        Everything is built before anything is swapped, so a failure leaves the worker as it
        was. Every input is read even when another is broken (keys and JWK Set files from the
        paths last named if the configuration is), so each is named. Off the event loop."""
        path = self.config.source
        problems: dict[str, list[str]] = {}
        try:
            config = self.config
            try:
                loaded = await asyncio.to_thread(load_config, path)
                missing = missing_inputs(loaded)
                if missing:
                    raise ConfigError(missing)
                config = loaded
            except ConfigError as exc:
                problems["config"] = exc.problems
            try:
                keyring = await asyncio.to_thread(
                    KeyRing.load, config.tokens.keys, config.tokens.algorithm
                )
            except KeyFileError as exc:
                problems["keys"] = [str(exc)]
            try:
                jwks = await asyncio.to_thread(self._prepare_jwks, config)
            except JwksError as exc:
                problems["jwks_file"] = [str(exc)]
            if problems:
                return self._refused(problems)
            old = self.runtime()
            runtime = build_runtime(
                config, keyring=keyring, jwks=jwks, pool=old.pool, revoked=self.revoked
            )
            for hook in self.reload_hooks:
                hook(config, keyring)
        except ConfigError as exc:
            return self._refused({"config": exc.problems})
        except Exception as exc:
            return self._refused({"config": [f"{path}: cannot be applied ({type(exc).__name__})"]})
        self._commit_jwks(config, jwks)
        self.config = config
        self.keyring = keyring
        self._runtime = runtime
        self.watch.leeway = config.tokens.leeway
        RELOADS.labels("ok").inc()
        self._refused_inputs = {}
        log.info("configuration reloaded from %s (%d routes)", path, len(config.routes))
        return True

    def _refused(self, problems: dict[str, list[str]]) -> bool:
        self._refused_inputs = degraded.refused_reasons(problems, self._refused_inputs)
        RELOADS.labels("error").inc()
        return False

    def degraded_inputs(self) -> dict[str, str]:
        """The inputs that are broken while their last good state serves, with why."""
        reasons = dict(self._refused_inputs)
        users = self.tokens.degraded()
        if users:
            reasons["users_file"] = users[0]
        failing = degraded.failing_jwks_uris(self.jwks)
        if failing:
            reasons["jwks_uri"] = failing
        return reasons

    def degraded(self) -> list[str]:
        """Why inputs are degraded (``/readyz``), one reason per broken input."""
        return list(self.degraded_inputs().values())

    async def readiness(self) -> list[str]:
        """Why this worker is not ready; empty when it is."""
        problems: list[str] = []
        if self.store is not None:
            # A write, not a read: a store that answers but cannot write (a full disk under
            # SQLite) fails every token endpoint, so it is not ready either.
            try:
                await asyncio.wait_for(
                    self.store.hit(key="gateway:readyz", window=1.0, now=time.time()), 2.0
                )
            except (StoreUnavailable, TimeoutError):
                problems.append("store unreachable")
            except StoreError as exc:
                problems.append(f"store cannot write ({type(exc).__name__})")
        if self.keyring is None or not self.keyring.kids:
            problems.append("no signing keys loaded")
        elif self._runtime is None:
            problems.append("starting")
        for issuer, source in self.jwks.items():
            if not source.ready:
                problems.append(f"JWKS of {issuer} never fetched")
        return [*problems, *self.oidc.readiness()]

    async def _publish(self) -> None:
        """Write buffered access-log lines every 0.2 s and the metrics snapshot every second."""
        tick = 0
        warned = -math.inf
        while True:
            await asyncio.sleep(0.2)
            self.access_log.flush()
            tick += 1
            if tick % 5 == 0:
                degraded.publish(self.degraded_inputs())
                try:
                    await asyncio.to_thread(publish_snapshot)
                except OSError as exc:
                    # Metrics of this worker go stale; the access log must not stop with them.
                    if time.monotonic() - warned > 60:
                        warned = time.monotonic()
                        log.warning("cannot publish this worker's metrics: %s", exc)

    async def shutdown(self) -> None:
        await self.oidc.stop()
        for task in [*self._tasks, *self._jwks_loops.values()]:
            task.cancel()
        for task in [*self._tasks, *self._jwks_loops.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runtime is not None:
            self._runtime.pool.close()
        if self.http is not None:
            await self.http.aclose()
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.close()
        await asyncio.to_thread(self.access_log.close)
        with contextlib.suppress(OSError):
            publish_snapshot()
