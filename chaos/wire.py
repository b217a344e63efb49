"""Incremental parsers for what the service sends: an HTTP head, chunked bodies, SSE, WebSocket.

The chaos clients read raw sockets (so that a slow reader really reads a few bytes at a
time and a churning client can hang up in the middle of a frame); these parsers take
whatever bytes arrived and return what is complete. The SSE parser follows the
EventSource specification (fields, comments, multi-line data, `retry`), the WebSocket
one RFC 6455 as a client sees it (unmasked frames from the server, fragmentation).
"""

from __future__ import annotations

import base64
import os
import struct
from dataclasses import dataclass, field
from urllib.parse import urlencode

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
#: Bytes a response head may take before the client gives up on it.
MAX_HEAD_BYTES = 65_536


class ProtocolError(Exception):
    """The server sent something a client cannot parse."""


def sse_request(path: str, params: dict[str, str], last_event_id: str | None) -> bytes:
    """`GET /stream` as EventSource sends it (with `Last-Event-ID` when resuming)."""
    lines = [
        f"GET {path}?{urlencode(params)} HTTP/1.1",
        "Host: 127.0.0.1",
        "Accept: text/event-stream",
        "Cache-Control: no-cache",
    ]
    if last_event_id:
        lines.append(f"Last-Event-ID: {last_event_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ws_request(path: str, params: dict[str, str]) -> bytes:
    """A WebSocket handshake for `path` (the cursor goes in `params`, as the page does)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path}?{urlencode(params)} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Head:
    status: int
    headers: dict[str, str]


class HeadParser:
    """Collects bytes until the end of a response head; the rest is body."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> tuple[Head | None, bytes]:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("response head too long")
            return None, b""
        raw, rest = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
        self._buffer = b""
        status_line, *header_lines = raw.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {status_line!r}")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Head(int(parts[1]), headers), rest


class Dechunker:
    """`Transfer-Encoding: chunked` to plain bytes, handing out partial chunks at once
    (a slow reader must see progress); `finished` after the last chunk."""

    def __init__(self) -> None:
        self._buffer = b""
        self._remaining = 0  # data bytes of the current chunk still to come
        self._crlf_due = False  # the CRLF that ends a chunk's data
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = []
        while not self.finished and self._buffer:
            if self._remaining:
                taken = self._buffer[: self._remaining]
                out.append(taken)
                self._buffer = self._buffer[len(taken) :]
                self._remaining -= len(taken)
                self._crlf_due = self._remaining == 0
            elif self._crlf_due:
                if len(self._buffer) < 2:
                    break
                self._buffer, self._crlf_due = self._buffer[2:], False
            else:
                line_end = self._buffer.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(self._buffer[:line_end].split(b";")[0] or b"0", 16)
                self._buffer = self._buffer[line_end + 2 :]
                self.finished = size == 0
                self._remaining = size
        return b"".join(out)


@dataclass
class SseEvent:
    data: str
    id: str | None
    event: str


@dataclass
class SseParser:
    """EventSource's parser: returns dispatched events; remembers `retry` and the last id."""

    retry_ms: int | None = None
    last_event_id: str | None = None
    comments: int = 0
    last_comment: str | None = None
    _pending: bytes = b""
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _id: str | None = None

    def feed(self, data: bytes) -> list[SseEvent]:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        events = []
        for raw in lines:
            line = raw.decode()
            if line.endswith("\r"):
                line = line[:-1]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "":
            self.comments += 1
            self.last_comment = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if self._id is not None:
            self.last_event_id = self._id
        data, event = self._data, self._event or "message"
        self._data, self._event, self._id = [], "", None
        if not data:
            return None
        return SseEvent("\n".join(data), self.last_event_id, event)


@dataclass
class WsFrame:
    opcode: int
    payload: bytes


class WsParser:
    """Server frames to messages: text/binary whole (continuations joined), control frames."""

    def __init__(self) -> None:
        self._buffer = b""
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0

    def feed(self, data: bytes) -> list[WsFrame]:
        self._buffer += data
        frames = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> WsFrame | None:
        while True:
            parsed = self._take_frame()
            if parsed is None:
                return None
            fin, opcode, payload = parsed
            if opcode >= OP_CLOSE:
                return WsFrame(opcode, payload)
            if opcode != OP_CONTINUATION:
                self._fragment_opcode = opcode
            self._fragments.append(payload)
            if fin:
                message = b"".join(self._fragments)
                self._fragments = []
                return WsFrame(self._fragment_opcode, message)

    def _take_frame(self) -> tuple[bool, int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        fin, opcode = bool(buffer[0] & 0x80), buffer[0] & 0x0F
        masked, length = bool(buffer[1] & 0x80), buffer[1] & 0x7F
        offset = 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, offset = struct.unpack("!H", buffer[2:4])[0], 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
        if masked:
            raise ProtocolError("a server frame must not be masked")
        if len(buffer) < offset + length:
            return None
        payload = buffer[offset : offset + length]
        self._buffer = buffer[offset + length :]
        return fin, opcode, payload


def ws_client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked client frame (pong, close echo); payloads here are short."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        header = bytes([0x80 | opcode, 0x80 | len(payload)])
    else:
        header = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", len(payload))
    return header + mask + masked


def close_code(payload: bytes) -> int:
    """The status code of a close frame (1005 when it carries none)."""
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
