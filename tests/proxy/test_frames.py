"""The frame tracker: where frames end in one direction, without holding a payload."""

from __future__ import annotations

import os

import pytest

from gateway.proxy.frames import NO_STATUS, FrameTracker, close_frame


def frame(payload: bytes, opcode: int = 0x2, mask: bytes | None = None, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        head = bytes((first, (0x80 if mask else 0) | size))
    elif size < 65536:
        head = bytes((first, (0x80 if mask else 0) | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, (0x80 if mask else 0) | 127)) + size.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536], ids=lambda n: f"{n} bytes")
def test_whole_frames_pass_and_end_at_a_boundary(size: int) -> None:
    tracker = FrameTracker(1 << 20)
    data = frame(os.urandom(size)) + frame(b"next")
    assert tracker.feed(data) == data
    assert tracker.at_boundary


def test_a_header_cut_short_waits_for_its_end() -> None:
    tracker = FrameTracker(1 << 20)
    data = frame(b"x" * 300, mask=b"abcd")
    assert tracker.feed(data[:3]) == b""
    assert tracker.feed(data[3:10]) == data[:10]
    assert not tracker.at_boundary
    assert tracker.feed(data[10:]) == data[10:]
    assert tracker.at_boundary


def test_a_cut_stops_at_the_next_boundary_and_keeps_the_rest() -> None:
    tracker = FrameTracker(1 << 20)
    first, second = frame(b"a" * 50), frame(b"b" * 50)
    assert tracker.feed(first[:20]) == first[:20]
    tracker.cut = True
    assert tracker.feed(first[20:] + second) == first[20:]
    assert tracker.leftover == second


def test_a_frame_over_the_limit_is_not_let_through() -> None:
    tracker = FrameTracker(100)
    small, big = frame(b"s" * 100), frame(b"b" * 101)
    assert tracker.feed(small + big) == small
    assert tracker.too_big


@pytest.mark.parametrize("mask", [None, b"\x01\x02\x03\x04"], ids=["unmasked", "masked"])
def test_a_close_frame_gives_its_code(mask: bytes | None) -> None:
    tracker = FrameTracker(1 << 20)
    data = frame(b"text") + frame((4001).to_bytes(2, "big") + b"bye", opcode=0x8, mask=mask)
    tracker.feed(data[:-2])
    assert not tracker.closed
    tracker.feed(data[-2:])
    assert tracker.closed and tracker.close_code == 4001


def test_a_close_frame_without_a_code_is_1005() -> None:
    tracker = FrameTracker(1 << 20)
    tracker.feed(frame(b"", opcode=0x8))
    assert tracker.close_code == NO_STATUS


def test_the_gateways_close_frame_is_masked_towards_a_server() -> None:
    tracker = FrameTracker(1 << 20)
    tracker.feed(close_frame(1001, "", mask=b"wxyz"))
    assert tracker.close_code == 1001
    assert close_frame(1008, "token expired") == b"\x88\x0f\x03\xf0token expired"
