"""A load generator process: thousands of SSE or WebSocket clients on one event loop.

Raw sockets with hand-written HTTP/1.1 and WebSocket framing on asyncio (uvloop when
installed): a client costs a socket and one small object, and counting a delivery is a
`bytes.count`, so the generator stays far from being the bottleneck (its CPU is measured
and reported by run.py).

The controller (run.py) drives each generator through a Pipe and reads its counters
from a shared array without asking:

    stats[LIVE]        streams whose response head arrived (SSE 200 / WS 101)
    stats[FAILED]      connects or handshakes that failed
    stats[DELIVERIES]  messages received (one event or text frame = one delivery)
    stats[LOST]        streams the server closed
    stats[OPENING]     connects in progress (and, when waiting for heads, heads due)

Commands, each answered with one reply: ("open", spec), ("stop_opening",), ("latency", bool),
("take_latency",), ("counts",), ("live_users",), ("reset_counts",), ("close_all",),
("exit",).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import socket
import struct
import time
from array import array

from tests.harness.limits import raise_nofile

LIVE, FAILED, DELIVERIES, LOST, OPENING, OPENED = range(6)
N_STATS = 8

#: The producer's stamp: `ts=` and time.time_ns(), 19 digits, inside every payload.
TS_RE = re.compile(rb"ts=(\d{19})")
TS_LEN = 22
SSE_EVENT = b"\ndata:"
#: Seconds a connect may take (SYN retries included) before it counts as failed.
CONNECT_TIMEOUT_S = 20.0
#: Seconds a client waits for its response head before it stops holding a slot for it.
HEAD_TIMEOUT_S = 30.0
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


def build_request(spec: dict, user_id: str) -> bytes:
    path = spec["path"].format(user_id=user_id)
    host = f"127.0.0.1:{spec['port']}"
    if spec["transport"] == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n\r\n"
    ).encode()


async def open_all(state: State, spec: dict) -> None:
    """Open one client per user id in spec["users"], at most spec["concurrency"] at a time.

    With spec["await_head"], a slot is held until the response head arrives (a server
    that answers at once); without, only while the TCP connect is in progress (Flask-SSE
    sends its head with the first message)."""
    loop = asyncio.get_running_loop()
    stats = state.stats
    slots = asyncio.Semaphore(spec["concurrency"])
    deadline = time.monotonic() + spec["max_s"]
    ws = spec["transport"] == "ws"
    # One source address per generator: one address reaches one server port through at
    # most 28,232 ephemeral ports here, fewer than a capacity ramp's streams.
    local_addr = (spec["source"], 0) if spec.get("source") else None

    async def open_one(user_id: str) -> None:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                stats[OPENING] -= 1
                slots.release()

        client = Client(state, user_id, build_request(spec, user_id), ws, None)
        if spec["await_head"]:
            client.on_head = release
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: client, "127.0.0.1", spec["port"], local_addr=local_addr
                ),
                CONNECT_TIMEOUT_S,
            )
        except (TimeoutError, OSError):
            stats[FAILED] += 1
            release()
            return
        stats[OPENED] += 1
        state.clients.append(client)
        if spec["await_head"] and not released:
            loop.call_later(HEAD_TIMEOUT_S, release)
        else:
            release()

    tasks = []
    for user_id in spec["users"]:
        if time.monotonic() > deadline:
            break
        await slots.acquire()
        stats[OPENING] += 1
        tasks.append(asyncio.ensure_future(open_one(user_id)))
    await asyncio.gather(*tasks, return_exceptions=True)


def serve(pipe, stats, index: int) -> None:
    """The process's main: run the event loop and answer the controller's commands."""
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    state = State(stats)
    background: set[asyncio.Future] = set()

    def on_command() -> None:
        # The loop makes a reader's fd non-blocking; a command (a list of 10,000 user ids)
        # may be larger than one pipe buffer, so read it whole in blocking mode.
        os.set_blocking(pipe.fileno(), True)
        try:
            command, *args = pipe.recv()
        except EOFError:
            loop.stop()
            return
        reply: object = "ok"
        if command == "open":
            task = asyncio.ensure_future(open_all(state, args[0]))
            background.add(task)
            task.add_done_callback(background.discard)
        elif command == "stop_opening":
            for task in list(background):
                task.cancel()
            stats[OPENING] = 0
        elif command == "latency":
            state.latency_on = bool(args[0])
            state.latencies = array("q")
        elif command == "take_latency":
            reply = state.latencies.tobytes()
            state.latencies = array("q")
        elif command == "counts":
            reply = array("q", (c.msgs for c in state.clients if c.live)).tobytes()
        elif command == "live_users":
            reply = sorted({c.user_id for c in state.clients if c.live})
        elif command == "reset_counts":
            for client in state.clients:
                client.msgs = 0
        elif command == "close_all":
            for task in list(background):
                task.cancel()
            for client in state.clients:
                client.abort()
            state.clients = []
            for i in range(N_STATS):
                stats[i] = 0
        elif command == "exit":
            loop.stop()
        pipe.send(reply)

    loop.add_reader(pipe.fileno(), on_command)
    try:
        loop.run_forever()
    finally:
        for client in state.clients:
            client.abort()
