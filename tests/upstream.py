"""A real upstream HTTP server for tests: records what it received and answers on demand."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from tests.waiting import eventually

CHUNK = bytes(range(256)) * 256  # 64 KiB of a known pattern


def pattern_sha256(size: int) -> str:
    """The SHA-256 of ``size`` bytes of the download pattern."""
    digest = hashlib.sha256()
    left = size
    while left:
        piece = CHUNK[: min(left, len(CHUNK))]
        digest.update(piece)
        left -= len(piece)
    return digest.hexdigest()


@dataclass
class Seen:
    method: str
    path: str
    raw_path: bytes
    query: bytes
    headers: list[tuple[str, str]]

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


@dataclass
class Upstream:
    """The upstream ASGI app; ``seen`` lists every request that reached it."""

    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    else:
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        self.seen.append(
            Seen(
                scope["method"],
                scope["path"],
                scope.get("raw_path") or b"",
                scope["query_string"],
                headers,
            )
        )
        query = parse_qs(scope["query_string"].decode())
        path: str = scope["path"]
        digest = hashlib.sha256()
        length = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            digest.update(body)
            length += len(body)
            more = message.get("more_body", False)
        if path.startswith("/download"):
            size = int(query["size"][0])
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/octet-stream"),
                        (b"content-length", str(size).encode()),
                    ],
                }
            )
            left = size
            while left:
                piece = CHUNK[: min(left, len(CHUNK))]
                left -= len(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": left > 0})
            return
        if path.startswith("/events"):
            # A server-sent event stream: one event every 50 ms, for up to 20 s.
            start = {"type": "http.response.start", "status": 200}
            start["headers"] = [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
            ]
            await send(start)
            for count in range(400):
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"data: tick %d\n\n" % count,
                        "more_body": True,
                    }
                )
                await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": b""})
            return
        if path.startswith("/slow"):
            await asyncio.sleep(float(query.get("seconds", ["3"])[0]))
        status = int(query.get("status", ["200"])[0])
        extra: list[tuple[bytes, bytes]] = []
        if path.startswith("/cookies"):
            extra = [
                (b"set-cookie", b"a=1; Path=/"),
                (b"set-cookie", b"b=2; Path=/; HttpOnly"),
                (b"set-cookie", b"gw_refresh=stolen; Path=/auth"),
                (b"set-cookie", b"gw_refresh =spaced; Path=/auth"),
                (b"set-cookie", b"gw_refresh\t=tabbed; Path=/auth"),
            ]
        if path.startswith("/hop"):
            extra = [
                (b"connection", b"x-secret-hop"),
                (b"x-secret-hop", b"1"),
                (b"keep-alive", b"timeout=5"),
                (b"x-custom", b"kept"),
            ]
        payload = json.dumps(
            {
                "method": scope["method"],
                "path": path,
                "raw_path": (scope.get("raw_path") or b"").decode("latin-1"),
                "query": scope["query_string"].decode("latin-1"),
                "headers": headers,
                "body_sha256": digest.hexdigest(),
                "body_length": length,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-upstream", b"yes"),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class ServerThread:
    """Runs an ASGI app under uvicorn on 127.0.0.1:``port`` in a background thread."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="error",
            lifespan="on",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = port

    def __enter__(self) -> ServerThread:
        self.thread.start()
        eventually(lambda: self.server.started, timeout=10, interval=0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)
