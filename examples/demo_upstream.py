"""A toy, unauthenticated API to put behind the gateway in the demo (`make run`), and its app.

It trusts the identity headers the gateway sets, exactly as a real upstream behind Gateway
would, and shows them back so you can see what the gateway sent. It also serves the static
single-page app of ``examples/spa/`` at ``/app/`` (a public route of the gateway), and a
WebSocket at ``/api/live`` that sends a message every half second to whoever the gateway says
is connected (the app shows them live; the gateway closes it when the session ends).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

SPA = Path(__file__).resolve().parent / "spa"
# The app loads only its own files and talks only to its own origin (the gateway).
SPA_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-cache"),
]

ORDERS: dict[int, dict[str, object]] = {1: {"id": 1, "item": "coffee", "by": "demo"}}
_ids = itertools.count(2)


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world", "auth": "none needed"})


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "subject": request.headers.get("x-auth-subject"),
            "scopes": request.headers.get("x-auth-scopes"),
            "request_id": request.headers.get("x-request-id"),
            "forwarded_for": request.headers.get("x-forwarded-for"),
        }
    )


async def list_orders(request: Request) -> JSONResponse:
    return JSONResponse({"orders": list(ORDERS.values())})


async def create_order(request: Request) -> JSONResponse:
    body = await request.json()
    order = {
        "id": next(_ids),
        "item": str(body.get("item")),
        "by": request.headers.get("x-auth-subject"),
    }
    ORDERS[int(order["id"])] = order  # type: ignore[arg-type]
    return JSONResponse(order, status_code=201)


async def live(websocket: WebSocket) -> None:
    # The page offers the "live" subprotocol (beside its token, which never arrives here).
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="live" if "live" in offered else None)
    subject = websocket.headers.get("x-auth-subject")
    try:
        for count in itertools.count(1):
            stamp = time.strftime("%H:%M:%S")
            await websocket.send_json({"n": count, "to": subject, "time": stamp})
            await asyncio.sleep(0.5)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client or the gateway closed it


class SpaFiles:
    """The SPA's static files, with the page headers a real deployment would send."""

    def __init__(self) -> None:
        self._files = StaticFiles(directory=SPA, html=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *SPA_HEADERS]
            await send(message)

        await self._files(scope, receive, with_headers)


async def to_app(request: Request) -> Response:
    # Relative, so the browser stays on the gateway's origin (the Host here is the upstream's).
    return RedirectResponse("/app/", status_code=308)


app = Starlette(
    routes=[
        Route("/app", to_app),
        Mount("/app", SpaFiles()),
        Route("/public/hello", hello),
        Route("/api/whoami", whoami),
        Route("/api/orders", list_orders, methods=["GET"]),
        Route("/api/orders", create_order, methods=["POST"]),
        WebSocketRoute("/api/live", live),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
