"""Body limits, streaming of large bodies, and upstream failures (502, 504)."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from typing import Any

import httpx
import pytest

from tests.proxy.conftest import Stack
from tests.upstream import CHUNK, pattern_sha256
from tests.waiting import eventually

MiB = 1024 * 1024


def test_body_over_max_body_is_413_before_the_upstream_is_contacted(stack: Stack) -> None:
    before = len(stack.upstream.seen)
    response = httpx.post(f"{stack.url}/small", content=b"x" * 11)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert len(stack.upstream.seen) == before


def test_body_of_exactly_max_body_is_accepted(stack: Stack) -> None:
    response = httpx.post(f"{stack.url}/small", content=b"x" * 10)
    assert response.status_code == 200
    assert response.json()["body_length"] == 10


def test_streamed_body_over_max_body_is_413(stack: Stack) -> None:
    def chunks():  # no Content-Length: chunked transfer encoding
        yield b"x" * 6
        yield b"x" * 6

    response = httpx.post(f"{stack.url}/small", content=chunks())
    assert response.status_code == 413


def test_50_mib_download_streams_with_matching_hash_and_flat_memory(stack: Stack) -> None:
    rss_before = stack.gateway.rss_kib()
    digest = hashlib.sha256()
    size = 50 * MiB
    with httpx.stream("GET", f"{stack.url}/download?size={size}", timeout=60) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == pattern_sha256(size)
    grown_mib = (stack.gateway.rss_kib() - rss_before) / 1024
    assert grown_mib < 20, f"gateway RSS grew by {grown_mib:.1f} MiB for a 50 MiB download"


def test_a_client_that_abandons_a_download_stops_the_upstream_transfer(stack: Stack) -> None:
    size = 16 * 1024**3  # minutes to relay whole; the gateway must stop long before
    with socket.create_connection(("127.0.0.1", stack.gateway.port), timeout=5) as sock:
        sock.sendall(
            f"GET /download?size={size} HTTP/1.1\r\nHost: a\r\n"
            "X-Request-ID: abandoned-download\r\n\r\n".encode()
        )
        received = 0
        while received < 1024 * 1024:
            received += len(sock.recv(65536))

    def logged() -> Any:
        line = next(
            (
                json.loads(x)
                for x in stack.gateway.stdout().splitlines()
                if '"abandoned-download"' in x
            ),
            None,
        )
        assert line is not None, "the abandoned download was still being relayed after 5 s"
        return line

    line = eventually(logged, timeout=5, interval=0.1)
    assert line["status"] == 499
    assert line["bytes_out"] < 1024**3


def test_50_mib_upload_streams_with_matching_hash_and_flat_memory(stack: Stack) -> None:
    size = 50 * MiB

    def body():
        left = size
        while left:
            piece = CHUNK[: min(left, len(CHUNK))]
            left -= len(piece)
            yield piece

    rss_before = stack.gateway.rss_kib()
    response = httpx.post(
        f"{stack.url}/upload", content=body(), timeout=60, headers={"Content-Length": str(size)}
    )
    assert response.status_code == 200
    assert response.json()["body_sha256"] == pattern_sha256(size)
    assert response.json()["body_length"] == size
    grown_mib = (stack.gateway.rss_kib() - rss_before) / 1024
    assert grown_mib < 20, f"gateway RSS grew by {grown_mib:.1f} MiB for a 50 MiB upload"


def test_unreachable_upstream_is_502(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/dead")
    assert response.status_code == 502
    assert response.json()["error"] == "bad_gateway"


def test_upstream_slower_than_timeout_is_504(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/slow?seconds=3", timeout=10)
    assert response.status_code == 504
    assert response.json()["error"] == "gateway_timeout"


def test_a_connection_option_naming_content_length_cannot_smuggle_a_request(
    stack: Stack,
) -> None:
    smuggled = b"GET /admin/secret HTTP/1.1\r\nHost: internal\r\n\r\n"
    before = len(stack.upstream.seen)
    answer = _raw(
        stack.gateway.port,
        b"POST /public/x HTTP/1.1\r\nHost: a\r\nConnection: content-length, close\r\n"
        b"Content-Length: %d\r\n\r\n" % len(smuggled) + smuggled,
        must_close=True,
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["body_length"] == len(smuggled)
    time.sleep(0.3)  # long enough for a smuggled second request to reach the upstream
    paths = [seen.path for seen in stack.upstream.seen[before:]]
    assert paths == ["/public/x"], "the body was read upstream as a second request"


def test_an_upgrade_request_with_a_body_is_400_and_closed(stack: Stack) -> None:
    # llhttp would end this request at its head and never deliver the declared body; the
    # upstream, told the length, would read the next request as that body.
    before = len(stack.upstream.seen)
    answer = _raw(
        stack.gateway.port,
        b"GET /public/a HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: Upgrade\r\n"
        b"Content-Length: 120\r\n\r\n",
        must_close=True,
    )
    assert answer.startswith(b"HTTP/1.1 400")
    assert len(stack.upstream.seen) == before


def _raw(port: int, request: bytes, *, must_close: bool = False) -> bytes:
    """Send ``request`` as bytes; the answer, read until the gateway closes (or 3 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except TimeoutError:
            assert not must_close, "the gateway kept the connection open"
        return b"".join(chunks)


def test_content_length_with_transfer_encoding_is_400_and_closed(stack: Stack) -> None:
    answer = _raw(
        stack.gateway.port,
        b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        must_close=True,
    )
    assert answer.startswith(b"HTTP/1.1 400")
    assert answer.count(b"HTTP/1.1") == 1


def test_two_different_content_lengths_are_400_and_closed(stack: Stack) -> None:
    answer = _raw(
        stack.gateway.port,
        b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
        b"hello!GET /public/y HTTP/1.1\r\nHost: a\r\n\r\n",
        must_close=True,
    )
    assert answer.startswith(b"HTTP/1.1 400")
    assert answer.count(b"HTTP/1.1") == 1  # closed: the second request was never read


def test_missing_host_is_400(stack: Stack) -> None:
    answer = _raw(stack.gateway.port, b"GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")


def test_two_hosts_are_400(stack: Stack) -> None:
    answer = _raw(
        stack.gateway.port,
        b"GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400")


def test_a_request_head_that_never_ends_is_cut_off_with_431(stack: Stack) -> None:
    """httptools would buffer it without limit; the gateway stops reading at 64 KiB."""
    with socket.create_connection(("127.0.0.1", stack.gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /public/x HTTP/1.1\r\nHost: a\r\nX-Big: ")
        answer = b""
        try:
            for _ in range(4 * 1024):  # up to 4 MiB, never ending the header
                sock.sendall(b"x" * 1024)
        except OSError:
            pass  # the gateway closed the connection: what we want
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    assert answer.startswith(b"HTTP/1.1 431")


def test_headers_over_32_kib_are_431(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/public/x", headers={"X-Big": "x" * 40_000})
    assert response.status_code == 431
    assert response.json()["error"] == "request_header_fields_too_large"


@pytest.mark.parametrize(
    "codings",
    [
        pytest.param(b"Transfer-Encoding: gzip, chunked\r\n", id="in one header"),
        pytest.param(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", id="in two"),
    ],
)
def test_a_transfer_coding_other_than_chunked_is_501(stack: Stack, codings: bytes) -> None:
    answer = _raw(
        stack.gateway.port,
        b"POST /public/x HTTP/1.1\r\nHost: a\r\n" + codings + b"\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 501")


def test_a_body_arriving_with_its_head_does_not_count_as_head(stack: Stack) -> None:
    body = b"y" * (200 * 1024)
    head = (
        b"POST /upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    answer = _raw(stack.gateway.port, head + body + b"")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
