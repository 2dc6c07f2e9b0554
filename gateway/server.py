"""Running the gateway under uvicorn with the settings a proxy needs.

- uvloop and httptools: the fast loop and parser. httptools (llhttp) also refuses a request
  carrying both ``Content-Length`` and ``Transfer-Encoding`` and closes the connection, where
  h11 kept it open and served the smuggled second request.
- ``proxy_headers=False``: uvicorn would otherwise believe ``X-Forwarded-For`` from 127.0.0.1;
  the gateway decides trust itself from ``server.trusted_proxies``.
- No ``Server``/``Date`` headers of uvicorn's own, so the upstream's pass through unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn

GRACEFUL_STOP_SECONDS = 30


def serve(config_path: Path, *, host: str, port: int, workers: int) -> None:
    """Run the gateway in the foreground until it is stopped."""
    os.environ["GATEWAY_CONFIG"] = str(config_path.resolve())
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        forwarded_allow_ips="",
        server_header=False,
        date_header=False,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_STOP_SECONDS,
        timeout_keep_alive=30,
        log_level="warning",
    )
