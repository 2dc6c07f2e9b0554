"""A raw-ASGI upstream for the streaming rows: it produces or swallows bytes, never holding them.

``GET /download?bytes=N`` answers N bytes in 64 KiB chunks of one preallocated buffer;
``POST /upload`` counts the request body as it arrives and answers ``{"received": N}``.
Run as ``python -m bench.stream_upstream --port P`` (uvicorn, uvloop, httptools, loopback).
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import parse_qs

import uvicorn

CHUNK = 64 * 1024
_BUFFER = b"\x00" * CHUNK

Scope = dict[str, Any]
Message = dict[str, Any]


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _download(scope: Scope, send: Any) -> None:
    query = parse_qs(scope.get("query_string", b"").decode())
    remaining = int(query.get("bytes", ["0"])[0])
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(remaining).encode()),
            ],
        }
    )
    view = memoryview(_BUFFER)
    while remaining > 0:
        size = min(CHUNK, remaining)
        await send(
            {
                "type": "http.response.body",
                "body": bytes(view[:size]) if size < CHUNK else _BUFFER,
                "more_body": True,
            }
        )
        remaining -= size
    await send({"type": "http.response.body", "body": b""})


async def _upload(receive: Any, send: Any) -> None:
    received = 0
    more = True
    while more:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        received += len(message.get("body", b""))
        more = message.get("more_body", False)
    await _answer(send, 200, json.dumps({"received": received}).encode())


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """The ASGI application."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/download" and scope["method"] == "GET":
        await _download(scope, send)
    elif path == "/upload" and scope["method"] in ("POST", "PUT"):
        await _upload(receive, send)
    else:
        await _answer(send, 404, b'{"error":"not_found"}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
