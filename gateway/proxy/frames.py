"""WebSocket frame boundaries in one direction of a relayed socket, followed without a payload.

The relay (``relay.py``) passes frames on unchanged; it only needs to know where each frame ends,
so that a close frame of its own can be put between two frames, never inside one (RFC 6455 §5.4
lets a control frame sit between the fragments of a message, so a frame boundary is enough: no
message is reassembled). The tracker reads each frame header (2 to 14 bytes, RFC 6455 §5.2) and
counts the payload that follows. It holds back a header cut short by a read until its end
arrives, so what it lets through always ends at a header's end or inside a payload, and the
gateway can add a frame at any boundary it reaches. A close frame's payload (at most 125 bytes)
is kept to learn its code. A frame that declares more than ``limit`` bytes is not let through.
"""

from __future__ import annotations

__all__ = ["NO_STATUS", "FrameTracker", "close_frame"]

NO_STATUS = 1005  # RFC 6455 §7.1.5: a close frame without a code
_CLOSE = 0x8


class FrameTracker:
    """Follows one direction's frames; ``feed`` says what of each read may go on."""

    __slots__ = (
        "_close",
        "_held",
        "_mask",
        "close_code",
        "closed",
        "cut",
        "leftover",
        "limit",
        "remaining",
        "too_big",
    )

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.remaining = 0  # payload bytes of the current frame still to come
        self._held = b""  # a header cut short
        self._close: bytearray | None = None  # a close frame's payload, while it arrives
        self._mask = b""
        self.cut = False  # stop at the next boundary (the relay adds its close frame there)
        self.leftover = b""  # what followed that boundary
        self.too_big = False
        self.closed = False  # a whole close frame went by
        self.close_code: int | None = None

    @property
    def at_boundary(self) -> bool:
        """Whether what was let through so far ends between two frames."""
        return self.remaining == 0

    def feed(self, data: bytes) -> bytes:
        """What of ``data`` may go on now, in order: all of it but a header cut short, or up
        to the first boundary when ``cut`` is set (the rest in ``leftover``), or up to a frame
        too large (``too_big``)."""
        if self._held:
            data = self._held + data
            self._held = b""
        end = len(data)
        pos = 0
        while True:
            remaining = self.remaining
            if remaining:
                stop = pos + remaining
                if stop >= end:
                    if self._close is not None:
                        self._close += data[pos:]
                    self.remaining = stop - end
                    if stop == end:
                        self._frame_end()
                    return data
                if self._close is not None:
                    self._close += data[pos:stop]
                self.remaining = 0
                pos = stop
                self._frame_end()
            if pos == end:
                return data
            if self.cut:
                self.leftover = data[pos:]
                return data[:pos]
            after = self._header(data, pos, end)
            if after < 0:
                self._held = data[pos:]
                return data[:pos]
            if self.too_big:
                return data[:pos]
            pos = after

    def _header(self, data: bytes, pos: int, end: int) -> int:
        """Read the header at ``pos``: the position after it, or -1 when it is incomplete."""
        if end - pos < 2:
            return -1
        first, second = data[pos], data[pos + 1]
        size = second & 0x7F
        masked = second & 0x80
        length_at = pos + 2
        after = length_at + (2 if size == 126 else 8 if size == 127 else 0) + (4 if masked else 0)
        if after > end:
            return -1
        if size == 126:
            size = int.from_bytes(data[length_at : length_at + 2], "big")
        elif size == 127:
            size = int.from_bytes(data[length_at : length_at + 8], "big")
        if size > self.limit:
            self.too_big = True
            return after
        if first & 0x0F == _CLOSE:
            self._close = bytearray()
            self._mask = data[after - 4 : after] if masked else b""
        self.remaining = size
        if size == 0:
            self._frame_end()
        return after

    def _frame_end(self) -> None:
        payload = self._close
        if payload is None:
            return
        self._close = None
        if self._mask:
            mask = self._mask
            payload = bytearray(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.closed = True
        if self.close_code is None:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else NO_STATUS


def close_frame(code: int, reason: str, mask: bytes | None = None) -> bytes:
    """A close frame; masked with ``mask`` (4 bytes) when it goes to a server (RFC 6455 §5.3)."""
    payload = code.to_bytes(2, "big") + reason.encode()[:123]
    if mask is None:
        return bytes((0x80 | _CLOSE, len(payload))) + payload
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes((0x80 | _CLOSE, 0x80 | len(payload))) + mask + masked
