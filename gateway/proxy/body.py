"""The client's request body, chunk by chunk, as ``forward`` sends it upstream.

Apart from ``forward.py`` because it is an async generator: mypyc (2.4) does not compile those,
and ``forward.py`` is compiled (setup.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.types import Receive

from gateway.http.contract import gone_status
from gateway.proxy.forward import BodyTooLarge, ClientGone, Exchange

__all__ = ["request_body"]


async def request_body(receive: Receive, limit: int, exchange: Exchange) -> AsyncIterator[bytes]:
    """The client's body, chunk by chunk, refusing to go past ``limit`` bytes."""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone(gone_status(message))
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if chunk:
            exchange.bytes_in += len(chunk)
            if exchange.bytes_in > limit:
                raise BodyTooLarge()
            yield chunk
