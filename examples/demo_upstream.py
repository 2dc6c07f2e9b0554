"""A toy, unauthenticated API to put behind the gateway in the demo (`make run`).

It trusts the identity headers the gateway sets, exactly as a real upstream behind Gateway
would, and shows them back so you can see what the gateway sent.
"""

from __future__ import annotations

import argparse
import itertools

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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


app = Starlette(
    routes=[
        Route("/public/hello", hello),
        Route("/api/whoami", whoami),
        Route("/api/orders", list_orders, methods=["GET"]),
        Route("/api/orders", create_order, methods=["POST"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
