"""The floor: the least a Python proxy on uvicorn's protocol + aiohttp's client does per request.

Raw ASGI, one shared ``aiohttp.ClientSession`` per worker, the path passed through, the
answer's headers copied minus hop-by-hop ones, the body relayed: no routing, no token, no
header policy, no log line, no metrics. It is the best feature-less Python proxy issue 5
measured; the gateway, with every feature on, has to do better than this row.
Run as ``python -m bench.floor_proxy --port P --upstream URL --workers N``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import aiohttp
import uvicorn

_UPSTREAM_ENV = "BENCH_FLOOR_UPSTREAM"
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding"})
_session: aiohttp.ClientSession | None = None


async def _lifespan(receive: Any, send: Any) -> None:
    global _session
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
            )
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _session is not None:
                await _session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI application."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    assert _session is not None
    url = os.environ[_UPSTREAM_ENV] + scope["path"]
    if scope.get("query_string"):
        url += "?" + scope["query_string"].decode("latin-1")
    async with _session.request(scope["method"], url) as response:
        headers = [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in _HOP_BY_HOP]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ[_UPSTREAM_ENV] = args.upstream.rstrip("/")
    uvicorn.run(
        "bench.floor_proxy:app",
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
