"""The server's HTTP/1.1 protocol (gateway/http/server.py) under uvicorn's Server, on real sockets.

Each test runs a small ASGI application behind ``GatewayHttpProtocol`` on 127.0.0.1 and speaks
raw HTTP/1.1 to it, so framing, pipelining, timeouts and failures are seen byte for byte.
The gateway-level suites cover the same protocol with the real application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
import uvicorn

from gateway.http.contract import REQUEST_ID_SCOPE_KEY, SWITCH_SCOPE_KEY, Tunnel
from gateway.http.server import MAX_HEAD_BYTES, GatewayHttpProtocol
from gateway.proxy.body import request_body
from gateway.proxy.forward import ClientGone
from gateway.proxy.forward import Exchange as ProxyExchange
from tests.waiting import eventually_async

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers ``hello <path>`` with a Content-Length."""
    body = b"hello " + scope["path"].encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, answers its size and its first and last bytes, unframed (chunked)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    summary = b"%d %s %s" % (len(body), body[:1], body[-1:])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": summary})


class Served:
    def __init__(self, port: int, server: uvicorn.Server) -> None:
        self.port = port
        self.server = server

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def exchange(self, request: bytes, *, timeout: float = 3.0) -> bytes:
        """Send ``request`` and read until the server closes (or ``timeout`` passes)."""
        reader, writer = await self.connect()
        writer.write(request)
        try:
            return await asyncio.wait_for(reader.read(-1), timeout)
        finally:
            writer.close()


async def serve(
    app: App,
    *,
    keep_alive: float = 5.0,
    protocol: Callable[..., GatewayHttpProtocol] = GatewayHttpProtocol,
    sock: socket.socket | None = None,
) -> tuple[Served, asyncio.Task[None]]:
    if sock is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=protocol,
        loop="none",
        lifespan="off",
        log_config=None,
        timeout_keep_alive=keep_alive,  # type: ignore[arg-type]
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    server.capture_signals = _no_signals  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually_async(lambda: server.started, timeout=10, interval=0.01)
    return Served(sock.getsockname()[1], server), task


def _no_signals() -> Any:
    import contextlib

    return contextlib.nullcontext()


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    marker = request.node.get_closest_marker("app")
    app: App = marker.args[0] if marker else hello
    options = marker.kwargs if marker else {}
    server, task = await serve(
        app,
        keep_alive=options.get("keep_alive", 5.0),
        protocol=options.get("protocol", GatewayHttpProtocol),
    )
    yield server
    server.server.should_exit = True
    await task


async def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    answer = await served.exchange(
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.index(b"hello /one") < answer.index(b"hello /two") < answer.index(b"hello /three")


async def test_a_whole_small_answer_leaves_in_one_write(served: Served) -> None:
    writes: list[bytes] = []
    original = GatewayHttpProtocol.connection_made

    def spying(self: GatewayHttpProtocol, transport: Any) -> None:
        original(self, transport)
        real = self.transport
        assert real is not None

        class Spy:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def write(self, data: bytes) -> None:
                writes.append(data)
                real.write(data)

        self.transport = Spy()  # type: ignore[assignment]

    GatewayHttpProtocol.connection_made = spying  # type: ignore[method-assign]
    try:
        answer = await served.exchange(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    finally:
        GatewayHttpProtocol.connection_made = original  # type: ignore[method-assign]
    assert answer.endswith(b"hello /x")
    assert len(writes) == 1 and writes[0] == answer


async def slow_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await asyncio.sleep(0.5)
    await send({"type": "http.response.body", "body": b"late"})


@pytest.mark.app.with_args(slow_body)
async def test_a_head_whose_body_is_late_is_sent_at_once(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.3)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head
    assert await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 2) == b"4\r\nlate\r\n0\r\n\r\n"
    writer.close()


@pytest.mark.app.with_args(echo)
async def test_a_large_chunked_body_is_delivered_whole(served: Served) -> None:
    body = b"a" + b"x" * (3 * 1024 * 1024) + b"z"
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(piece), piece)
        for piece in (body[i : i + 100_000] for i in range(0, len(body), 100_000))
    )
    answer = await served.exchange(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    assert answer.endswith(b"%x\r\n%d a z\r\n0\r\n\r\n" % (len(b"3145730 a z"), len(body)))


@pytest.mark.app.with_args(echo)
async def test_expect_100_continue_is_answered_when_the_body_is_read(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
    )
    writer.write(b"abc")
    assert (await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 2)).endswith(
        b"\r\n3 a c\r\n0\r\n\r\n"
    )
    writer.close()


@pytest.mark.app.with_args(hello)
async def test_expect_100_continue_is_not_sent_when_the_answer_needs_no_body(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert first.startswith(b"HTTP/1.1 200 OK")
    writer.close()


async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise ValueError("secret-token-value")


@pytest.mark.app.with_args(failing)
async def test_an_application_failure_is_a_500_in_one_log_line(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway"):
        answer = await served.exchange(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert b"connection: close" in answer
    assert [r.getMessage() for r in caplog.records] == [
        "unexpected ValueError in the application (answer 500)"
    ]
    assert not any(r.exc_info for r in caplog.records)
    assert "secret-token-value" not in caplog.text


async def short_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-length", b"10")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"12345", "more_body": True})


@pytest.mark.app.with_args(short_body)
async def test_an_answer_left_short_closes_the_connection(served: Served) -> None:
    answer = await served.exchange(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", timeout=2)
    assert answer.endswith(b"\r\n\r\n12345")  # closed: the client sees it is short


@pytest.mark.app.with_args(hello)
async def test_an_answer_to_head_has_no_body(served: Served) -> None:
    answer = await served.exchange(b"HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"content-length: 8\r\n" in answer
    assert answer.endswith(b"\r\n\r\n") and b"hello" not in answer


async def unframed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part one, ", "more_body": True})
    await send({"type": "http.response.body", "body": b"part two"})


@pytest.mark.app.with_args(unframed)
async def test_an_http_1_0_client_gets_a_close_delimited_body(served: Served) -> None:
    answer = await served.exchange(b"GET / HTTP/1.0\r\n\r\n")
    assert b"chunked" not in answer
    assert b"connection: close" in answer
    assert answer.endswith(b"\r\n\r\npart one, part two")


@pytest.mark.app.with_args(unframed)
async def test_an_answer_without_a_length_is_chunked_for_http_1_1(served: Served) -> None:
    answer = await served.exchange(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert answer.endswith(b"a\r\npart one, \r\n8\r\npart two\r\n0\r\n\r\n")


@pytest.mark.app.with_args(hello, keep_alive=0.3)
async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(-1), 2)  # ends only when the server closes
    assert answer.endswith(b"hello /x")
    writer.close()


@pytest.mark.app.with_args(hello, keep_alive=0.3)
async def test_a_connection_that_never_completes_a_request_is_closed(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET /x HTTP/1.1\r\n")
    await asyncio.sleep(0.2)
    writer.write(b"Host: a\r\n")  # still trickling, never finished
    assert await asyncio.wait_for(reader.read(-1), 2) == b""
    writer.close()


@pytest.mark.app.with_args(hello)
async def test_a_request_head_past_the_bound_is_431_and_closed(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")
    for _ in range(MAX_HEAD_BYTES // 1000 + 2):
        writer.write(b"x-filler: " + b"a" * 990 + b"\r\n")
    answer = await asyncio.wait_for(reader.read(-1), 3)
    assert answer.startswith(b"HTTP/1.1 431")
    writer.close()


@pytest.mark.app.with_args(hello)
async def test_a_malformed_request_is_400_and_closed(served: Served) -> None:
    answer = await served.exchange(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")
    assert b'"invalid_request"' in answer


@pytest.mark.app.with_args(hello)
async def test_an_upgrade_request_is_answered_as_http_and_the_connection_closed(
    served: Served,
) -> None:
    answer = await served.exchange(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x85garbage"
    )
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.count(b"HTTP/1.1") == 1


async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await asyncio.sleep(0.3)
    await hello(scope, receive, send)


@pytest.mark.app.with_args(slow)
async def test_shutdown_lets_the_answer_in_flight_finish_then_closes(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.1)
    served.server.should_exit = True
    answer = await asyncio.wait_for(reader.read(-1), 3)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in answer
    assert answer.endswith(b"hello /late")
    writer.close()


outcomes: list[str] = []


async def endless(scope: dict[str, Any], receive: Any, send: Any) -> None:
    from gateway.http.contract import ClientDisconnected

    await send({"type": "http.response.start", "status": 200, "headers": []})
    try:
        while True:
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
            await asyncio.sleep(0)
    except ClientDisconnected:
        outcomes.append("told")
        raise


@pytest.mark.app.with_args(endless)
async def test_send_after_the_client_left_raises_an_oserror(served: Served) -> None:
    outcomes.clear()
    reader, writer = await served.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await reader.readexactly(100_000)
    writer.close()
    await eventually_async(lambda: outcomes, timeout=2)
    assert outcomes == ["told"]


@pytest.mark.app.with_args(echo)
async def test_a_large_body_then_the_next_head_in_one_read_is_not_a_long_head(
    served: Served,
) -> None:
    body = b"a" + b"x" * 100_000 + b"z"
    reader, writer = await served.connect()
    writer.write(
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
        + b"GET /b HTTP/1.1\r\nHost: a\r\n"
    )
    await asyncio.sleep(0.2)
    writer.write(b"Connection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(-1), 3)
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert b"431" not in answer
    writer.close()


async def busy_after_first(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await hello(scope, receive, send)
    if scope["path"] == "/first":
        import time

        time.sleep(0.3)  # the loop is busy: the next head piles up and arrives in one read


@pytest.mark.app.with_args(busy_after_first)
async def test_a_long_head_arriving_in_one_read_is_431(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"hello /first"), 2)
    writer.write(
        b"GET /second HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 90) for i in range(1200))
        + b"\r\n"
    )
    answer = await asyncio.wait_for(reader.read(-1), 3)
    assert answer.startswith(b"HTTP/1.1 431")
    writer.close()


async def not_modified(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/cached":
        headers = [(b"content-length", b"5000"), (b"etag", b'"v1"')]
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
    else:
        await hello(scope, receive, send)


@pytest.mark.app.with_args(not_modified)
async def test_a_304_with_a_content_length_has_no_body_and_keeps_the_connection(
    served: Served,
) -> None:
    answer = await served.exchange(
        b"GET /cached HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 304 Not Modified\r\n")
    assert b"content-length: 5000\r\n" in answer
    assert answer.endswith(b"hello /x")


async def no_content(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-length", b"5"), (b"x-kept", b"1")]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


@pytest.mark.app.with_args(no_content)
async def test_a_204_goes_out_without_a_content_length_whatever_the_application_said(
    served: Served,
) -> None:
    answer = await served.exchange(b"DELETE /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"x-kept: 1\r\n" in answer
    assert b"content-length" not in answer.lower()


async def two_receivers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "http.request"
    results = await asyncio.gather(receive(), receive())
    outcomes.extend(message["type"] for message in results)


@pytest.mark.app.with_args(two_receivers)
async def test_every_concurrent_receive_learns_of_the_disconnect(served: Served) -> None:
    outcomes.clear()
    _, writer = await served.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.1)
    writer.close()
    await eventually_async(lambda: len(outcomes) == 2, timeout=2)
    assert outcomes == ["http.disconnect", "http.disconnect"]


async def refuses_uploads(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["method"] == "POST":  # answers without asking for the body, like a 401
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
    else:
        await hello(scope, receive, send)


@pytest.mark.app.with_args(refuses_uploads)
async def test_an_answer_given_before_an_expected_body_closes_the_connection(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    writer.write(
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(-1), 2)  # ends: the server closed
    assert answer.startswith(b"HTTP/1.1 401") and b"connection: close" in answer
    assert b"100 Continue" not in answer
    writer.close()


async def fails_after_answering(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await hello(scope, receive, send)
    if scope["path"] == "/a":
        raise ValueError("after the answer")


@pytest.mark.app.with_args(fails_after_answering)
async def test_a_failure_after_a_whole_answer_does_not_cut_the_next_one(served: Served) -> None:
    answer = await served.exchange(
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert answer.endswith(b"hello /b") and b"hello /a" in answer


@pytest.mark.app.with_args(slow)
async def test_a_pipelined_upgrade_is_answered_after_the_request_before_it(
    served: Served,
) -> None:
    answer = await served.exchange(
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x85garbage"
    )
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert answer.index(b"hello /first") < answer.index(b"hello /ws")
    assert answer.endswith(b"hello /ws")


@pytest.mark.app.with_args(slow)
async def test_a_pipelined_request_with_a_broken_body_is_400_after_the_one_before_it(
    served: Served,
) -> None:
    answer = await served.exchange(
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /broken HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    )
    first, _, refusal = answer.partition(b"hello /first")
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert refusal.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"/broken" not in answer


@pytest.mark.app.with_args(slow)
async def test_a_pipelined_malformed_head_is_400_after_the_one_before_it(served: Served) -> None:
    answer = await served.exchange(
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nBad Header\r\n\r\n"
    )
    first, _, refusal = answer.partition(b"hello /first")
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert refusal.startswith(b"HTTP/1.1 400 Bad Request\r\n")


@pytest.mark.app.with_args(echo)
async def test_no_100_continue_goes_out_for_a_body_already_refused(served: Served) -> None:
    answer = await served.exchange(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")


go = asyncio.Event()


async def starts_its_answer_on_cue(scope: dict[str, Any], receive: Any, send: Any) -> None:
    scope[REQUEST_ID_SCOPE_KEY] = "rid-held"
    await go.wait()
    await send({"type": "http.response.start", "status": 200, "headers": []})  # head held
    with contextlib.suppress(OSError):
        await receive()
        await send({"type": "http.response.body", "body": b"x"})


@pytest.mark.app.with_args(starts_its_answer_on_cue)
async def test_a_body_that_breaks_while_the_answer_head_is_held_gets_the_400(
    served: Served,
) -> None:
    go.clear()
    reader, writer = await served.connect()
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    await asyncio.sleep(0.2)
    writer.write(b"zz\r\n")  # read by the server in the same loop step as the app's start
    go.set()
    answer = await asyncio.wait_for(reader.read(-1), 3)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nx-request-id: rid-held\r\n" in answer


async def answers_without_reading(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": b"no"})


@pytest.mark.app.with_args(answers_without_reading)
async def test_a_broken_body_after_its_answer_closes_the_connection_quietly(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await served.connect()
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"no"), 3)).startswith(b"HTTP/1.1 401")
    writer.write(b"zz\r\n")
    assert await asyncio.wait_for(reader.read(-1), 3) == b""  # closed, nothing more said
    writer.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def header_names(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await asyncio.sleep(0.2)  # the trailer has long arrived
    body = b",".join(name for name, _ in scope["headers"])
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.app.with_args(header_names)
async def test_chunked_trailer_fields_never_join_the_headers(served: Served) -> None:
    answer = await served.exchange(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n0\r\nAuthorization: Bearer forged\r\nX-Late: 1\r\n\r\n"
    )
    names = answer.split(b"\r\n\r\n", 1)[1]
    assert names == b"host,transfer-encoding,connection"


def quick_to_give_up(**kwargs: Any) -> GatewayHttpProtocol:
    # A factory, not a subclass: the compiled protocol (make test-compiled) cannot be
    # subclassed from Python, and uvicorn takes any callable as its protocol class.
    protocol = GatewayHttpProtocol(**kwargs)
    protocol.send_timeout = 0.3
    return protocol


@pytest.mark.app.with_args(endless, protocol=quick_to_give_up)
async def test_a_client_that_stops_reading_is_cut_off_after_the_send_timeout(
    served: Served,
) -> None:
    outcomes.clear()
    _, writer = await served.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # and never reads again
    await eventually_async(lambda: outcomes, timeout=3)
    assert outcomes == ["told"]
    writer.close()


async def forever(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await asyncio.sleep(3600)


@pytest.mark.app.with_args(forever)
async def test_a_request_cut_by_the_end_of_a_graceful_stop_gets_a_json_503(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.1)
    served.server.should_exit = True  # the fixture's server waits 1 s, then cancels
    answer = await asyncio.wait_for(reader.read(-1), 5)
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b'"error": "unavailable"' in answer
    writer.close()


def quick_to_give_up_on_bodies(**kwargs: Any) -> GatewayHttpProtocol:
    protocol = GatewayHttpProtocol(**kwargs)
    protocol.body_timeout = 0.3
    return protocol


async def body_then_wait(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, then waits for a disconnect that does not come, then answers."""
    while (await receive()).get("more_body"):
        pass
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receive(), 0.6)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"waited"})


@pytest.mark.app.with_args(echo, protocol=quick_to_give_up_on_bodies)
async def test_a_request_body_that_stalls_is_answered_408_and_the_connection_closed(
    served: Served,
) -> None:
    answer = await served.exchange(
        b'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{"user'
    )  # read until the server closes
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b'"error": "request_timeout"' in answer


@pytest.mark.app.with_args(echo, protocol=quick_to_give_up_on_bodies)
async def test_a_body_that_keeps_coming_is_not_cut_off(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
    for byte in b"abcde":  # 1 s in all, never 0.3 s without a byte
        await asyncio.sleep(0.2)
        writer.write(bytes([byte]))
    answer = await asyncio.wait_for(reader.read(-1), 3)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"5 a e\r\n0\r\n\r\n")
    writer.close()


@pytest.mark.app.with_args(body_then_wait, protocol=quick_to_give_up_on_bodies)
async def test_waiting_for_a_disconnect_after_the_body_is_not_a_stalled_body(
    served: Served,
) -> None:
    answer = await served.exchange(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    )
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"waited\r\n0\r\n\r\n")


gone: list[int] = []


async def proxy_reading_a_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body as the gateway's proxy does, and notes the status it would log."""
    scope[REQUEST_ID_SCOPE_KEY] = "rid-1"  # as the gateway's front door names it
    try:
        async for _ in request_body(receive, 1 << 20, ProxyExchange()):
            pass
    except ClientGone as exc:
        gone.append(exc.status)


@pytest.mark.app.with_args(proxy_reading_a_body)
async def test_the_proxy_logs_400_for_a_body_the_server_could_not_parse(served: Served) -> None:
    gone.clear()
    answer = await served.exchange(
        b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"\r\nx-request-id: rid-1\r\n" in answer
    await eventually_async(lambda: gone, timeout=1)
    assert gone == [400]


@pytest.mark.app.with_args(proxy_reading_a_body, protocol=quick_to_give_up_on_bodies)
async def test_the_proxy_logs_408_for_a_body_the_server_cut_off(served: Served) -> None:
    gone.clear()
    answer = await served.exchange(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nhalf")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"\r\nx-request-id: rid-1\r\n" in answer
    assert gone == [408]


async def test_a_closed_connection_is_freed_without_waiting_for_a_garbage_collection(
    served: Served,
) -> None:
    import gc

    def alive() -> int:
        # Counted among the objects the collector tracks, not by weak reference: mypyc's
        # compiled classes (make test-compiled) do not support weak references.
        return sum(isinstance(o, GatewayHttpProtocol) for o in gc.get_objects())

    gc.collect()
    gc.disable()  # the worker's GC thresholds make full collections rare; here, none at all
    try:
        before = alive()
        for request in (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b""):
            reader, writer = await served.connect()
            await eventually_async(lambda: len(served.server.server_state.connections) == 1)
            assert alive() == before + 1
            if request:
                writer.write(request)
                await reader.readuntil(b"hello")
            writer.close()
            await eventually_async(lambda: not served.server.server_state.connections)
        # Freed by reference counting alone: no cycle (parser, exchange) keeps them.
        await eventually_async(lambda: alive() == before)
    finally:
        gc.enable()


class _EchoTunnel(Tunnel):
    """Echoes the bytes after the switch; ``ended`` resolves when the client is gone."""

    def __init__(self, ended: asyncio.Future[None]) -> None:
        self.ended = ended

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


async def switching(scope: dict[str, Any], receive: Any, send: Any) -> None:
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    head = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
    scope[SWITCH_SCOPE_KEY](head, _EchoTunnel(ended))
    await ended


@pytest.mark.app.with_args(switching)
async def test_a_switched_connection_is_freed_without_waiting_for_a_garbage_collection(
    served: Served,
) -> None:
    import gc

    def alive() -> int:
        return sum(isinstance(o, GatewayHttpProtocol) for o in gc.get_objects())

    gc.collect()
    gc.disable()  # the worker's GC thresholds make full collections rare; here, none at all
    try:
        before = alive()
        reader, writer = await served.connect()
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        assert alive() == before + 1
        writer.close()
        await eventually_async(lambda: not served.server.server_state.connections)
        # Freed by reference counting alone: the tunnel, parser and exchange let go of it.
        await eventually_async(lambda: alive() == before)
    finally:
        gc.enable()
