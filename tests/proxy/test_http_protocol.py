"""The response cycle's transport (gateway/http_protocol.py): one write for a whole small answer."""

from __future__ import annotations

import asyncio

from gateway.http_protocol import HeadHolder


class Recorder:
    """Stands in for the socket transport: what was written, call by call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.vectored: list[tuple[bytes, ...]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        self.vectored.append(tuple(parts))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def holder(recorder: Recorder) -> HeadHolder:
    return HeadHolder(recorder, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_a_head_and_its_body_leave_in_one_write() -> None:
    recorder = Recorder()
    transport = holder(recorder)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"body")
    transport.write(b"more")
    assert recorder.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]


async def test_a_head_without_a_body_yet_leaves_at_the_end_of_the_loop_step() -> None:
    recorder = Recorder()
    transport = holder(recorder)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert recorder.writes == []
    await asyncio.sleep(0)
    assert recorder.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]
    transport.write(b"later")
    assert recorder.writes[-1] == b"later"


async def test_closing_sends_a_held_head_first() -> None:
    recorder = Recorder()
    transport = holder(recorder)
    transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    transport.close()
    assert recorder.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"] and recorder.closed


async def test_a_large_body_is_not_copied_onto_the_head() -> None:
    recorder = Recorder()
    transport = holder(recorder)
    transport.write(b"HEAD")
    transport.write(b"x" * 1_000_000)
    assert recorder.writes == []
    assert recorder.vectored == [(b"HEAD", b"x" * 1_000_000)]
