"""A WebSocket client too slow to read its outbox is closed with 4408 and resumes by id
(README, "WebSocket frames from clients"): nothing is lost, nothing comes twice.

End to end through gunicorn with one worker, an outbox of 20 and drains of 10. The slow
client is a WebSocket client on a plain socket that stops reading (a small window, no
thread reading ahead) while drains of 10 large messages follow each other: once the
writer is blocked on a batch, two drains fill the outbox exactly and the next finds it
full, so the connection is cut at a moment the test controls. The client reads again at
once, within the grace a cut connection has to end by itself, and so gets the close frame.

A resume more than an outbox behind reads several drains' worth before its writer first
runs; that must not count as a client that does not read (it did, before the offer rule
asked whether the writer holds a batch).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
from collections.abc import Iterator

import pytest
import redis
from clients import open_ws, wait_until, ws_frames
from servers import Gunicorn, RedisServer, service_env

pytestmark = pytest.mark.e2e

USER = "dawdler"
MAILBOX = f"user_{USER}_messages"
PRESENCE = f"{{{MAILBOX}}}:presence"
#: A large message (60 KB).
BIG = "x" * 60_000
#: Drains of 10 large messages pushed: 7.2 MB, past what the socket buffers can take
#: (net.ipv4.tcp_wmem's largest send buffer is 4 MB) by more than three drains.
ROUNDS = 12
#: PUSH_DRAIN_BATCH: each LPUSH of this many is one drain and one offer.
DRAIN = 10
CLOSE_TOO_SLOW = 4408
OPCODE_TEXT, OPCODE_CLOSE = 0x1, 0x8


@pytest.fixture
def slow_service(tmp_path) -> Iterator[tuple[Gunicorn, redis.Redis]]:
    """One worker, an outbox of 20, and pings far apart (a client that does not read does
    not answer pings either: that would close it 1008 first)."""
    server = RedisServer(tmp_path / "redis").start()
    env = service_env(
        server.url,
        PUSH_DEMO="1",
        PUSH_OUTBOX_MAX="20",
        PUSH_DRAIN_BATCH="10",
        PUSH_WS_PING_S="300",
        PUSH_HEARTBEAT_S="1",
    )
    service = Gunicorn(tmp_path / "gunicorn.log", env, workers=1).start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    yield service, client
    client.close()
    service.stop()
    server.stop()


class RawWebSocket:
    """A WebSocket client on a plain socket, which reads only when told: no thread reads
    ahead for it, so its small window closes and the server's writes block."""

    def __init__(self, port: int, query: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.buffer += self._recv()
        taken, self.buffer = self.buffer[:count], self.buffer[count:]
        return taken

    def next_frame(self) -> tuple[int, bytes]:
        """The next frame from the server (unmasked, unfragmented): opcode and payload."""
        first, second = self._take(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._take(8))
        return first & 0x0F, self._take(length)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def push_drained(r: redis.Redis, first: int, pad: str) -> None:
    """LPUSH one drain's worth (`first`.. numbered), and wait until it left the mailbox."""
    r.lpush(MAILBOX, *[f"{n} {pad}" for n in range(first, first + DRAIN)])
    wait_until(lambda: r.llen(MAILBOX) == 0, what="the drain")


def test_a_slow_websocket_is_closed_4408_and_resumes_with_nothing_lost(slow_service):
    service, r = slow_service
    ws = RawWebSocket(service.port, f"user_id={USER}")
    try:
        wait_until(lambda: r.zcard(PRESENCE) == 1, what="the slow connection")
        # Drains of 10 large messages: the writer takes each as a batch until one blocks
        # on the closed window (the socket buffers hold at most a few MB), the next two
        # fill the outbox exactly (not behind), the one after finds no room at all: cut,
        # 4408 once the writer is free. Later ones reach the history only.
        sent = 0
        for _ in range(ROUNDS):
            push_drained(r, sent, BIG)
            sent += DRAIN
        received: list[tuple[str, int]] = []
        while (frame := ws.next_frame())[0] == OPCODE_TEXT:
            message = json.loads(frame[1])
            received.append((message["id"], int(message["data"].split(" ")[0])))
        opcode, payload = frame
        assert opcode == OPCODE_CLOSE, (opcode, payload[:100])
        (code,) = struct.unpack("!H", payload[:2])
        assert (code, payload[2:].decode()) == (CLOSE_TOO_SLOW, "outbox full")
    finally:
        ws.close()
    wait_until(lambda: r.zcard(PRESENCE) == 0, what="the cut connection's release")
    assert received, "the slow client got nothing before its close"
    assert len(received) < sent
    # It resumes from the last id it got: the rest, once each, in order.
    last_id = received[-1][0]
    # (30 behind with an outbox of 20: the resume reads three drains' worth before its
    # writer first runs, which must not count as a client that does not read.)
    with open_ws(service.base_url, {"user_id": USER, "last_event_id": last_id}) as resumed:
        frames = ws_frames(resumed, sent - len(received))
    rest = [(frame["id"], int(frame["data"].split(" ")[0])) for frame in frames]
    assert [n for _, n in received + rest] == list(range(sent))
    ids = [event_id for event_id, _ in received + rest]
    assert len(set(ids)) == len(ids)
