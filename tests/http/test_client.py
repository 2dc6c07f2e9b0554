"""The data path's HTTP/1.1 client (gateway/http/client.py) against scripted upstreams on real sockets.

Each upstream here is a real TCP server on 127.0.0.1 that answers with exact bytes, so the
cases a well-behaved framework never produces (no length, interim answers, a close racing a
request, garbage) can be provoked. The gateway-level tests cover the ordinary exchanges.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import errno
import ipaddress
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.http.client import MAX_RESPONSE_HEAD, READ_HIGH_WATER
from gateway.http.pool import UpstreamPool
from gateway.http.target import Target
from gateway.proxy.forward import (
    BodyTooLarge,
    Exchange,
    GatewayOverloaded,
    UpstreamTimeout,
    UpstreamUnreachable,
    forward,
)

Action = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def reply(data: bytes, *, close: bool = False) -> Action:
    """Read the request's body, answer ``data``, then close the connection if asked."""

    async def act(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        await _read_body(reader, head)
        writer.write(data)
        await writer.drain()
        if close:
            writer.close()
        return not close

    return act


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
    """Close without a word, as a server does when its keep-alive timer fires."""
    writer.close()
    return False


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        return await reader.readexactly(length)
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return body
            body += chunk[:-2]
    return b""


class Scripted:
    """A TCP upstream answering each request with the next action of its script."""

    def __init__(self, *actions: Action) -> None:
        self.actions = list(actions)
        self.requests: list[bytes] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.actions:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self.requests.append(head)
                if not await self.actions.pop(0)(reader, writer, head):
                    break
        except ConnectionError:
            pass  # the gateway closed a connection it gave up on
        finally:
            writer.close()


class Relay:
    """What the ASGI server would have been sent."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.ended = False

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = message["headers"]
        else:
            self.body += message.get("body", b"")
            self.ended = not message.get("more_body", False)


async def exchange(
    pool: UpstreamPool,
    url: str,
    *,
    method: str = "GET",
    path: bytes = b"/",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: AsyncIterator[bytes] | None = None,
    length: int | None = None,
    timeout: float = 5.0,
) -> Relay:
    relay = Relay()
    await forward(
        pool,
        method=method,
        target=Target.parse(url),
        path=path,
        headers=headers or [],
        body=body,
        length=length,
        timeout=timeout,
        send=relay,
        response_headers=list,
        exchange=Exchange(),
    )
    return relay


async def parts(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool()
    yield pool
    pool.close()


async def test_a_kept_alive_connection_carries_the_next_request(pool: UpstreamPool) -> None:
    async with Scripted(reply(OK), reply(OK), reply(OK)) as upstream:
        for _ in range(3):
            assert (await exchange(pool, upstream.url)).body == b"ok"
    assert upstream.connections == 1


async def test_the_request_line_carries_the_targets_base_path_and_host(pool: UpstreamPool) -> None:
    async with Scripted(reply(OK)) as upstream:
        await exchange(pool, upstream.url + "/base", path=b"/orders?x=1")
    port = upstream.url.rsplit(":", 1)[1]
    assert upstream.requests[0].startswith(
        b"GET /base/orders?x=1 HTTP/1.1\r\nhost: 127.0.0.1:" + port.encode() + b"\r\n"
    )


async def test_credentials_in_the_upstream_url_become_basic_authorization(
    pool: UpstreamPool,
) -> None:
    async with Scripted(reply(OK)) as upstream:
        url = upstream.url.replace("http://", "http://svc:p%40ss@")
        await exchange(pool, url, headers=[(b"authorization", b"Bearer client")])
    expected = b"authorization: Basic " + base64.b64encode(b"svc:p@ss") + b"\r\n"
    assert expected in upstream.requests[0]
    assert b"Bearer client" not in upstream.requests[0]


async def test_a_get_that_meets_a_keep_alive_close_is_sent_again_on_a_new_connection(
    pool: UpstreamPool,
) -> None:
    async with Scripted(reply(OK), hang_up, reply(OK)) as upstream:
        await exchange(pool, upstream.url)
        relay = await exchange(pool, upstream.url)
    assert (relay.status, relay.body) == (200, b"ok")
    assert upstream.connections == 2


async def test_a_post_that_meets_a_keep_alive_close_is_not_sent_again(pool: UpstreamPool) -> None:
    async with Scripted(reply(OK), hang_up, reply(OK)) as upstream:
        await exchange(pool, upstream.url)
        with pytest.raises(UpstreamUnreachable):
            await exchange(pool, upstream.url, method="POST")
    assert len(upstream.requests) == 2


async def test_an_answer_without_a_length_ends_when_the_upstream_closes(pool: UpstreamPool) -> None:
    answer = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + b"x" * 100_000
    async with Scripted(reply(answer, close=True), reply(OK)) as upstream:
        relay = await exchange(pool, upstream.url)
        assert (relay.body, relay.ended) == (b"x" * 100_000, True)
        assert (await exchange(pool, upstream.url)).body == b"ok"
    assert upstream.connections == 2


async def test_an_answer_to_head_has_no_body_and_the_connection_stays_usable(
    pool: UpstreamPool,
) -> None:
    head_answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n"
    async with Scripted(reply(head_answer), reply(OK)) as upstream:
        relay = await exchange(pool, upstream.url, method="HEAD")
        assert (relay.status, relay.body, relay.ended) == (200, b"", True)
        assert (b"content-length", b"5000") in relay.headers
        assert (await exchange(pool, upstream.url)).body == b"ok"
    assert upstream.connections == 1


async def test_interim_answers_are_skipped(pool: UpstreamPool) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"
    async with Scripted(reply(interim + OK)) as upstream:
        relay = await exchange(pool, upstream.url)
    assert (relay.status, relay.body, relay.headers) == (200, b"ok", [(b"content-length", b"2")])


async def test_a_chunked_answer_is_relayed_decoded(pool: UpstreamPool) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with Scripted(reply(answer), reply(OK)) as upstream:
        assert (await exchange(pool, upstream.url)).body == b"abcde"
        assert (await exchange(pool, upstream.url)).body == b"ok"
    assert upstream.connections == 1


async def test_an_answer_that_is_not_http_is_a_bad_gateway(pool: UpstreamPool) -> None:
    async with Scripted(reply(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")) as upstream:
        with pytest.raises(UpstreamUnreachable, match="connection failed"):
            await exchange(pool, upstream.url)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 101 Switching Protocols\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 000 Zero\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 099 Low\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 600 High\r\ncontent-length: 2\r\n\r\nok",
    ],
    ids=["bare-101", "000", "099", "600"],
)
async def test_a_status_that_cannot_be_relayed_is_a_bad_gateway_at_once(
    pool: UpstreamPool, answer: bytes
) -> None:
    async with Scripted(reply(answer)) as upstream:  # the connection stays open
        with pytest.raises(UpstreamUnreachable, match="connection failed"):
            await asyncio.wait_for(exchange(pool, upstream.url), 2)


@pytest.mark.parametrize(
    "coding, body",
    [
        (b"gzip, chunked", b"3\r\nabc\r\n0\r\n\r\n"),
        (b"gzip", b"abc"),
    ],
    ids=["gzip-under-chunked", "gzip-close-delimited"],
)
async def test_an_answer_in_a_transfer_coding_other_than_chunked_is_a_bad_gateway(
    pool: UpstreamPool, coding: bytes, body: bytes
) -> None:
    answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: " + coding + b"\r\n\r\n" + body
    async with Scripted(reply(answer, close=True)) as upstream:
        with pytest.raises(UpstreamUnreachable, match="connection failed"):
            await asyncio.wait_for(exchange(pool, upstream.url), 2)


async def test_a_response_head_past_the_limit_is_a_bad_gateway(pool: UpstreamPool) -> None:
    huge = b"HTTP/1.1 200 OK\r\n" + b"x-filler: " + b"a" * MAX_RESPONSE_HEAD + b"\r\n\r\n"
    async with Scripted(reply(huge)) as upstream:
        with pytest.raises(UpstreamUnreachable):
            await exchange(pool, upstream.url)


async def test_a_body_without_a_declared_length_goes_upstream_chunk_encoded(
    pool: UpstreamPool,
) -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: Any, head: bytes) -> bool:
        seen.append(await _read_body(reader, head))
        writer.write(OK)
        return True

    async with Scripted(record) as upstream:
        await exchange(pool, upstream.url, method="POST", body=parts(b"hello ", b"world"))
    assert b"transfer-encoding: chunked\r\n" in upstream.requests[0]
    assert seen == [b"hello world"]


async def test_an_early_answer_is_relayed_and_its_connection_not_reused(
    pool: UpstreamPool,
) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: Any, head: bytes) -> bool:
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
        await asyncio.sleep(0.2)  # the body is never read
        return False

    async def endless() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0.01)
            yield b"x" * 1024

    async with Scripted(refuse, reply(OK)) as upstream:
        relay = await exchange(pool, upstream.url, method="POST", body=endless())
        assert relay.status == 413
        assert (await exchange(pool, upstream.url)).body == b"ok"
    assert upstream.connections == 2


async def test_a_body_error_while_uploading_reaches_the_caller(pool: UpstreamPool) -> None:
    async def too_large() -> AsyncIterator[bytes]:
        yield b"x"
        raise BodyTooLarge()

    async def wait(reader: asyncio.StreamReader, writer: Any, head: bytes) -> bool:
        await asyncio.sleep(1)
        return False

    async with Scripted(wait) as upstream:
        with pytest.raises(BodyTooLarge):
            await exchange(pool, upstream.url, method="POST", body=too_large())


async def test_no_answer_within_the_timeout_is_a_gateway_timeout(pool: UpstreamPool) -> None:
    async def silent(reader: asyncio.StreamReader, writer: Any, head: bytes) -> bool:
        await asyncio.sleep(1)
        return False

    async with Scripted(silent) as upstream:
        with pytest.raises(UpstreamTimeout):
            await exchange(pool, upstream.url, timeout=0.2)


async def test_a_refused_connection_is_unreachable_and_retryable(pool: UpstreamPool) -> None:
    async with Scripted() as upstream:
        url = upstream.url
    with pytest.raises(UpstreamUnreachable) as caught:
        await exchange(pool, url)
    assert caught.value.connect


async def test_a_slow_reader_pauses_the_upstream(pool: UpstreamPool) -> None:
    size = 8 * 1024 * 1024
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"z" * size
    async with Scripted(reply(answer)) as upstream:
        conn, _ = await pool.connect(Target.parse(upstream.url))
        conn.send_head(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", head_only=False)
        await conn.read_head(5.0)
        await asyncio.sleep(0.3)  # nothing read meanwhile
        assert conn.buffered <= READ_HIGH_WATER + 256 * 1024
        received = 0
        while chunk := await conn.read(5.0):
            received += len(chunk)
        assert received == size
        conn.close()


async def test_idle_connections_are_closed_after_the_idle_timeout() -> None:
    pool = UpstreamPool(idle_timeout=0.1)
    try:
        async with Scripted(reply(OK), reply(OK)) as upstream:
            await exchange(pool, upstream.url)
            await asyncio.sleep(0.2)
            await exchange(pool, upstream.url)
        assert upstream.connections == 2
    finally:
        pool.close()


async def test_a_connection_that_speaks_while_idle_is_not_reused(pool: UpstreamPool) -> None:
    async def chatty(reader: asyncio.StreamReader, writer: Any, head: bytes) -> bool:
        writer.write(OK + b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        return True

    async with Scripted(chatty, reply(OK)) as upstream:
        await exchange(pool, upstream.url)
        await asyncio.sleep(0.1)
        assert (await exchange(pool, upstream.url)).body == b"ok"
    assert upstream.connections == 2


async def test_an_unasked_protocol_switch_is_a_bad_gateway(pool: UpstreamPool) -> None:
    switch = (
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
    )
    async with Scripted(reply(switch + b"\x81\x05hello")) as upstream:
        with pytest.raises(UpstreamUnreachable):
            await exchange(pool, upstream.url)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
async def tls_upstream(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(OK)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}", cert
    server.close()


async def test_an_https_upstream_is_verified_against_the_trusted_certificates(
    tls_upstream: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = tls_upstream
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    pool = UpstreamPool()
    try:
        relay = await exchange(pool, url)
    finally:
        pool.close()
    assert (relay.status, relay.body) == (200, b"ok")


async def test_an_https_upstream_with_an_untrusted_certificate_is_unreachable(
    tls_upstream: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, _ = tls_upstream
    (tmp_path / "other").mkdir()
    other, _ = self_signed(tmp_path / "other")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    pool = UpstreamPool()
    try:
        with pytest.raises(UpstreamUnreachable) as caught:
            await exchange(pool, url)
    finally:
        pool.close()
    assert caught.value.connect


async def test_an_upload_longer_than_the_timeout_is_not_an_upstream_timeout(
    pool: UpstreamPool,
) -> None:
    async def slow_body() -> AsyncIterator[bytes]:
        for _ in range(6):  # 2.4 s of upload against a 1 s timeout
            await asyncio.sleep(0.4)
            yield b"x" * 1024

    async with Scripted(reply(OK)) as upstream:
        relay = await exchange(
            pool,
            upstream.url,
            method="POST",
            length=6144,
            body=slow_body(),
            timeout=1.0,
        )
    assert (relay.status, relay.body) == (200, b"ok")


async def test_a_client_pausing_its_body_past_the_timeout_is_not_an_upstream_timeout(
    pool: UpstreamPool,
) -> None:
    # The pause is the client's: charging it to the upstream would answer 504 and rest a
    # healthy target (the server's body timeout bounds the client instead).
    async def paused() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.sleep(1.2)
        yield b"y"

    async with Scripted(reply(OK)) as upstream:
        relay = await exchange(
            pool, upstream.url, method="POST", length=2, body=paused(), timeout=0.5
        )
    assert (relay.status, relay.body) == (200, b"ok")


async def test_a_client_pausing_its_body_while_the_answer_streams_is_not_an_upstream_timeout(
    pool: UpstreamPool,
) -> None:
    # A full-duplex upstream answers at once and reads the body as it comes.
    async def duplex(reader: asyncio.StreamReader, writer: Any, head: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        body = await reader.readexactly(2)
        writer.write(b"2\r\n" + body + b"\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async def paused() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.sleep(1.2)
        yield b"y"

    async with Scripted(duplex) as upstream:
        relay = await exchange(
            pool, upstream.url, method="POST", length=2, body=paused(), timeout=0.5
        )
    assert (relay.status, relay.body, relay.ended) == (200, b"helloxy", True)


async def test_an_upstream_that_does_not_answer_a_whole_upload_in_time_is_a_gateway_timeout(
    pool: UpstreamPool,
) -> None:
    async def wait(reader: asyncio.StreamReader, writer: Any, head: bytes) -> bool:
        await asyncio.sleep(3)
        return False

    async with Scripted(wait) as upstream:
        with pytest.raises(UpstreamTimeout):
            await exchange(
                pool, upstream.url, method="POST", length=2, body=parts(b"x", b"y"), timeout=0.5
            )


async def test_a_response_head_under_the_limit_in_two_segments_is_accepted(
    pool: UpstreamPool,
) -> None:
    filler = b"".join(b"x-filler-%d: %s\r\n" % (i, b"a" * 100) for i in range(480))
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n" + filler + b"\r\n"
    assert 32 * 1024 < len(head) < MAX_RESPONSE_HEAD

    async def in_two(reader: asyncio.StreamReader, writer: Any, request: bytes) -> bool:
        writer.write(head[: len(head) // 2])
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(head[len(head) // 2 :] + b"ok")
        return True

    async with Scripted(in_two) as upstream:
        assert (await exchange(pool, upstream.url)).body == b"ok"


async def test_an_answer_cut_by_a_reset_is_not_relayed_as_whole(pool: UpstreamPool) -> None:
    async def reset(reader: asyncio.StreamReader, writer: Any, head: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npartial-")
        await writer.drain()
        await asyncio.sleep(0.1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN
        return False

    relay = Relay()
    async with Scripted(reset) as upstream:
        with pytest.raises(UpstreamUnreachable):
            await forward(
                pool,
                method="GET",
                target=Target.parse(upstream.url),
                path=b"/",
                headers=[],
                body=None,
                length=None,
                timeout=5.0,
                send=relay,
                response_headers=list,
                exchange=Exchange(),
            )
    assert relay.body == b"partial-" and not relay.ended


async def test_bytes_after_a_whole_answer_keep_the_connection_out_of_the_pool(
    pool: UpstreamPool,
) -> None:
    overlong = OK + b"HTTP/1.1 200 OK\r\nx-stale: leaked\r\n"  # more than its length says
    async with Scripted(reply(overlong), reply(OK)) as upstream:
        assert (await exchange(pool, upstream.url)).body == b"ok"
        relay = await exchange(pool, upstream.url)
    assert (relay.status, relay.headers) == (200, [(b"content-length", b"2")])
    assert upstream.connections == 2


async def test_a_connection_given_up_on_is_dropped_at_once(pool: UpstreamPool) -> None:
    held: list[Any] = []

    async def never_reads(reader: asyncio.StreamReader, writer: Any, head: bytes) -> bool:
        held.append(writer)  # keeps its end open and reads nothing: a hung upstream
        await asyncio.sleep(30)
        return False

    async def huge() -> AsyncIterator[bytes]:
        for _ in range(256):
            yield b"x" * 65536  # far more than the socket buffers hold

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    async with Scripted(never_reads) as upstream:
        before = open_descriptors()
        with pytest.raises(UpstreamTimeout):
            await exchange(
                pool, upstream.url, method="POST", body=huge(), length=256 * 65536, timeout=0.3
            )
        await asyncio.sleep(0.3)
        # The upstream's end is still open (held); the gateway's end, with unsent bytes
        # queued, must be gone rather than wait forever to flush them.
        assert open_descriptors() <= before + 1
        for writer in held:
            writer.close()


async def test_a_body_shorter_than_declared_keeps_the_connection_out_of_the_pool(
    pool: UpstreamPool,
) -> None:
    async def answers_at_once(reader: asyncio.StreamReader, writer: Any, head: bytes) -> bool:
        writer.write(OK)  # answers without reading the body it was promised
        return True

    async with Scripted(answers_at_once, reply(OK)) as upstream:
        with contextlib.suppress(UpstreamUnreachable):
            await exchange(pool, upstream.url, method="POST", body=parts(b"abc"), length=10)
        assert (await exchange(pool, upstream.url)).body == b"ok"
    assert upstream.connections == 2


async def test_a_worker_out_of_descriptors_answers_503_and_blames_no_upstream(
    pool: UpstreamPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def exhausted(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EMFILE, "Too many open files")

    # The real limit is the machine's. The loop, not the pool: the pool may be compiled, and
    # a compiled class's methods cannot be replaced.
    monkeypatch.setattr(pool.loop, "create_connection", exhausted)
    with pytest.raises(GatewayOverloaded) as caught:
        await exchange(pool, "http://127.0.0.1:9")
    assert (caught.value.status, caught.value.connect) == (503, False)


async def test_a_connection_that_broke_is_freed_without_waiting_for_a_garbage_collection(
    pool: UpstreamPool,
) -> None:
    import gc

    from gateway.http.client import Connection

    gc.collect()
    gc.disable()  # the worker's GC thresholds make full collections rare; here, none at all
    try:
        async with Scripted(reply(OK), hang_up, reply(OK)) as upstream:
            await exchange(pool, upstream.url)
            relay = await exchange(pool, upstream.url)  # meets the close, sent again
        assert relay.status == 200
        await asyncio.sleep(0.1)
        # Only the pooled connection is left: the one that broke (its parser, its failure's
        # traceback) was freed by reference counting alone. Compiled (make test-compiled),
        # connections are not among the objects the collector tracks: the census sees none.
        census = [o for o in gc.get_objects() if isinstance(o, Connection)]
        assert len(census) == (0 if os.environ.get("GATEWAY_COMPILED") == "1" else 1)
    finally:
        gc.enable()
