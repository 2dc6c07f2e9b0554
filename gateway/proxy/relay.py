"""One WebSocket relayed between a client and its upstream, after both handshakes.

Bytes pass unchanged and in order in both directions, straight from one transport to the other:
nothing is buffered here beyond a frame header cut short by a read (``frames.py``). Back-pressure
is the transports' own: when one side's write buffer passes its high-water mark, the other side
stops being read until it drains, so a slow reader slows its writer and memory stays bounded.

Either peer closes as it likes: its close frame is relayed like any frame, and when one side's
connection ends the other's is closed once what was written to it has left. The gateway ends a
socket itself (its authority ended, a frame too large, a graceful stop) with ``end``: a close
frame of its own to each side, each at the next frame boundary of that side's stream. After it,
nothing more passes: each side's close reply ends that side's connection, and a side that does
not reply within ``GRACE`` seconds is cut off.
"""

from __future__ import annotations

import asyncio
import os

from gateway.http.contract import Tunnel
from gateway.proxy.frames import FrameTracker, close_frame

__all__ = ["GRACE", "Relay"]

GRACE = 2.0  # how long a side may take to answer the gateway's close frame
ABNORMAL = 1006  # RFC 6455 §7.1.5: the connection ended without a close frame


class _Stream:
    """One direction: frames from ``source`` to ``sink``."""

    __slots__ = ("pending", "sent", "sink", "source", "stash", "tracker")

    def __init__(self, limit: int) -> None:
        self.tracker = FrameTracker(limit)
        self.source: asyncio.Transport | None = None
        self.sink: asyncio.Transport | None = None
        self.pending = b""  # the gateway's close frame, waiting for a boundary
        self.sent = False  # the gateway's close frame went to the sink: nothing more passes
        self.stash = b""  # bytes that came before the sink was connected (one read at most)


class Relay:
    """Relays one WebSocket; ``done`` resolves when both connections have ended."""

    def __init__(self, limit: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._up = _Stream(limit)  # client -> upstream
        self._down = _Stream(limit)  # upstream -> client
        self.client_side: Tunnel = _Side(self, client=True)
        self.upstream_side: asyncio.Protocol = _Side(self, client=False)
        self.bytes_in = 0  # client -> upstream
        self.bytes_out = 0  # upstream -> client
        self.close_code: int | None = None
        self.reason: str | None = None  # why it ended, a metric label
        self._lost = [False, False]  # client, upstream
        self._timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] = self._loop.create_future()

    # the gateway's end

    def end(self, reason: str, code: int, text: str, upstream_code: int = 1001) -> None:
        """Close both sides: ``code`` and ``text`` to the client, ``upstream_code`` upstream."""
        if self.done.done() or self._timer is not None:
            return
        if self.reason is None:
            self.reason = reason
        if self.close_code is None:
            self.close_code = code
        self._inject(self._down, close_frame(code, text))
        self._inject(self._up, close_frame(upstream_code, "", os.urandom(4)))
        self._timer = self._loop.call_later(GRACE, self.abort)

    def end_authority(self, why: str) -> None:
        """The token expired or its session was revoked: 1008 to the client, 1001 upstream."""
        self.end(why.replace(" ", "_"), 1008, why)

    def abort(self) -> None:
        """Cut both connections now."""
        for stream in (self._up, self._down):
            if stream.source is not None:
                stream.source.abort()

    def _inject(self, stream: _Stream, frame: bytes) -> None:
        if stream.sent or stream.tracker.closed:
            return  # a close frame already went that way
        if stream.sink is not None and stream.tracker.at_boundary:
            stream.sink.write(frame)
            stream.sent = True
            stream.pending = b""
            stream.tracker.cut = False
        else:
            stream.pending = frame
            stream.tracker.cut = True

    # the bytes

    def _pass(self, stream: _Stream, data: bytes, *, from_client: bool) -> None:
        tracker = stream.tracker
        sink = stream.sink
        if sink is None:
            stream.stash += data
            if stream.source is not None:
                stream.source.pause_reading()
            return
        if stream.sent:
            tracker.feed(data)  # nothing passes; only the source's close reply is looked for
        else:
            out = tracker.feed(data)
            if out:
                sink.write(out)
                if from_client:
                    self.bytes_in += len(out)
                else:
                    self.bytes_out += len(out)
            if tracker.too_big:
                # 1009 to the side that sent it, 1001 to the other.
                to_client, to_upstream = (1009, 1001) if from_client else (1001, 1009)
                self.end("message_too_big", to_client, "message too big", to_upstream)
            elif stream.pending and tracker.cut and tracker.at_boundary:
                sink.write(stream.pending)
                stream.pending = b""
                stream.sent = True
                tracker.cut = False
                leftover, tracker.leftover = tracker.leftover, b""
                tracker.feed(leftover)
        if tracker.closed:
            if self.close_code is None:
                self.close_code = tracker.close_code
                self.reason = "client" if from_client else "upstream"
            other = self._down if from_client else self._up
            if other.sent and stream.source is not None:
                stream.source.close()  # the reply to the gateway's close: that side is done

    def _connected(self, transport: asyncio.Transport, *, client: bool) -> None:
        if client:
            self._up.source = self._down.sink = transport
        else:
            self._down.source = self._up.sink = transport
        stream = self._down if client else self._up
        if stream.stash:
            data, stream.stash = stream.stash, b""
            self._pass(stream, data, from_client=not client)
            if stream.source is not None:
                stream.source.resume_reading()
        if stream.pending and stream.tracker.at_boundary:
            self._inject(stream, stream.pending)

    def _lose(self, *, client: bool) -> None:
        self._lost[0 if client else 1] = True
        if self.close_code is None:
            self.close_code = ABNORMAL
            self.reason = "client" if client else "upstream"
        other = self._up.sink if client else self._down.sink
        if other is not None and not other.is_closing():
            other.close()  # after what was written to it has left...
            if self._timer is None:  # ...unless that side stopped reading: then cut it off
                self._timer = self._loop.call_later(GRACE, self.abort)
        if all(self._lost) and not self.done.done():
            if self._timer is not None:
                self._timer.cancel()
            self.done.set_result(None)

    def _pause(self, *, client: bool) -> None:
        """``client``'s write buffer is full: stop reading the side that feeds it."""
        source = self._down.source if client else self._up.source
        if source is not None:
            source.pause_reading()

    def _resume(self, *, client: bool) -> None:
        source = self._down.source if client else self._up.source
        if source is not None and not source.is_closing():
            source.resume_reading()


class _Side(Tunnel):
    """One connection's callbacks, passed to the relay."""

    __slots__ = ("_client", "_relay", "_stream")

    def __init__(self, relay: Relay, *, client: bool) -> None:
        self._relay = relay
        self._client = client
        self._stream = relay._up if client else relay._down

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._relay._connected(transport, client=self._client)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self._relay._pass(self._stream, data, from_client=self._client)

    def eof_received(self) -> bool | None:
        return None  # WebSocket has no half-close: the connection ends

    def connection_lost(self, exc: Exception | None) -> None:
        self._relay._lose(client=self._client)

    def pause_writing(self) -> None:
        self._relay._pause(client=self._client)

    def resume_writing(self) -> None:
        self._relay._resume(client=self._client)

    def shutdown(self) -> None:
        self._relay.end("shutdown", 1001, "going away")
