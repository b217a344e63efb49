"""The load generator's clients: one SSE or WebSocket stream each, counting what arrives
into the process's shared counters (see loadgen.py for the indices' meaning)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import struct
import time
from array import array

LIVE, FAILED, DELIVERIES, LOST, OPENING, OPENED = range(6)
N_STATS = 8

#: The producer's stamp: `ts=` and time.time_ns(), 19 digits, inside every payload.
TS_RE = re.compile(rb"ts=(\d{19})")
TS_LEN = 22
SSE_EVENT = b"\ndata:"
LINGER_RST = struct.pack("ii", 1, 0)


class State:
    """What one generator process shares between its clients."""

    def __init__(self, stats) -> None:
        self.stats = stats
        self.latency_on = False
        self.latencies = array("q")
        self.clients: list[Client] = []


class Client(asyncio.Protocol):
    """One SSE or WebSocket stream; counts what arrives, stamps latency when asked."""

    __slots__ = (
        "buf",
        "head",
        "live",
        "msgs",
        "on_head",
        "request",
        "state",
        "tail",
        "transport",
        "user_id",
        "ws",
    )

    def __init__(self, state: State, user_id: str, request: bytes, ws: bool, on_head) -> None:
        self.state = state
        self.user_id = user_id
        self.request = request
        self.ws = ws
        self.on_head = on_head
        self.transport = None
        self.head = b""
        self.live = False
        self.msgs = 0
        self.tail = b""
        self.buf = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        if self.live:
            self.state.stats[LOST] += 1
        self._head_done()
        self.transport = None

    def _head_done(self) -> None:
        if self.on_head is not None:
            callback, self.on_head = self.on_head, None
            callback()

    def data_received(self, data: bytes) -> None:
        if not self.live:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > 65536:
                    self.transport.abort()
                return
            status = self.head[:16]
            expected = b" 101 " if self.ws else b" 200 "
            # Offered like a browser does, but these clients read uncompressed frames only.
            compressed = self.ws and b"permessage-deflate" in self.head[:end].lower()
            data = self.head[end + 4 :]
            self.head = b""
            if expected not in status or compressed:
                self.state.stats[FAILED] += 1
                self._head_done()
                self.transport.abort()
                return
            self.live = True
            self.state.stats[LIVE] += 1
            self._head_done()
            if not data:
                return
        if self.ws:
            self._ws_frames(data)
        else:
            self._sse(data)

    def _sse(self, data: bytes) -> None:
        tail = self.tail
        buf = tail + data if tail else data
        n = buf.count(SSE_EVENT, max(0, len(tail) - len(SSE_EVENT) + 1))
        if n:
            self.msgs += n
            self.state.stats[DELIVERIES] += n
            if self.state.latency_on:
                now = time.time_ns()
                append = self.state.latencies.append
                for match in TS_RE.finditer(buf, max(0, len(tail) - TS_LEN + 1)):
                    append(now - int(match.group(1)))
        self.tail = buf[-(TS_LEN - 1) :]

    def _ws_frames(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        size = len(buf)
        i = 0
        texts = 0
        start = 0
        while size - i >= 2:
            b0 = buf[i]
            length = buf[i + 1] & 0x7F
            header = 2
            if length == 126:
                if size - i < 4:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                header = 4
            elif length == 127:
                if size - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                header = 10
            if size - i < header + length:
                break
            opcode = b0 & 0x0F
            if opcode == 1:
                texts += 1
            elif opcode == 9:
                self._ws_send(0xA, buf[i + header : i + header + length])
            elif opcode == 8:
                self._ws_send(0x8, buf[i + header : i + header + min(length, 2)])
            i += header + length
        if texts:
            self.msgs += texts
            self.state.stats[DELIVERIES] += texts
            if self.state.latency_on:
                now = time.time_ns()
                append = self.state.latencies.append
                for match in TS_RE.finditer(buf, start, i):
                    append(now - int(match.group(1)))
        self.buf = buf[i:]

    def _ws_send(self, opcode: int, payload: bytes) -> None:
        """A masked client frame (pong or close echo), payload under 126 bytes."""
        if self.transport is None:
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[k % 4] for k, b in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def abort(self) -> None:
        self.live = False
        self.on_head = None
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        transport.abort()
