"""Assembly: the worker's ASGI application, its lifespan, and the order requests flow in.

A request whose normalised path is the gateway's own (``/auth/...``, ``/.well-known/...``) goes
to the Starlette token-service app; every other path goes to the pure-ASGI proxy handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from gateway.auth.jwks import JwksSource
from gateway.auth.keys import KeyRing, ensure_key
from gateway.config import Config, load_config
from gateway.handler import ProxyHandler
from gateway.proxy import make_session
from gateway.runtime import Runtime, build_runtime

log = logging.getLogger("gateway")


class GatewayApp:
    """The ASGI application of one worker process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._runtime: Runtime | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.keyring: KeyRing | None = None
        self.jwks: dict[str, JwksSource] = {}
        self.http: httpx.AsyncClient | None = None
        self.proxy = ProxyHandler(self.runtime)
        self.auth_app = Starlette(
            routes=[StarletteRoute("/.well-known/jwks.json", self.jwks_endpoint)]
        )

    def runtime(self) -> Runtime:
        assert self._runtime is not None, "the lifespan has not started"
        return self._runtime

    async def jwks_endpoint(self, request: Request) -> JSONResponse:
        assert self.keyring is not None
        return JSONResponse(self.keyring.jwks(), headers={"cache-control": "public, max-age=300"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith(("/auth/", "/.well-known/")) or path == "/auth":
                await self.auth_app(scope, receive, send)
            else:
                await self.proxy(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
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
        ensure_key(tokens.keys, tokens.algorithm)
        self.keyring = KeyRing.load(tokens.keys, tokens.algorithm)
        self.http = httpx.AsyncClient(timeout=5.0)
        for trusted in config.trusted_issuers:
            if trusted.jwks_file is not None:
                source = JwksSource.from_file(trusted.issuer, trusted.jwks_file)
            else:
                assert trusted.jwks_uri is not None
                source = JwksSource.from_uri(trusted.issuer, trusted.jwks_uri, self.http)
                self._tasks.append(asyncio.create_task(source.run_refresh_loop()))
            self.jwks[trusted.issuer] = source
        self._runtime = build_runtime(
            config, keyring=self.keyring, jwks=self.jwks, session=make_session()
        )

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runtime is not None:
            await self._runtime.session.close()
        if self.http is not None:
            await self.http.aclose()


def create_app(config_path: str | Path | None = None) -> GatewayApp:
    """The application for the configuration at ``config_path`` (or ``GATEWAY_CONFIG``)."""
    path = config_path or os.environ.get("GATEWAY_CONFIG") or "routes.yaml"
    return GatewayApp(load_config(path))
