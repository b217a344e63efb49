"""The WebSocket below the frames: pings from the service, no per-message compression.

A raw socket speaking WebSocket with wsproto (simple-websocket's own protocol
library) decides for itself whether to answer pings; the service under test pings
every second (PUSH_WS_PING_S=1, tests/conftest.py).
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

from clients import DEADLINE_S, drainer_pids, open_ws, wait_until
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)


class RawClient:
    """One WebSocket client on a plain socket; events are read one by one."""

    def __init__(self, base_url: str, user: str) -> None:
        address = urlsplit(base_url)
        self.sock = socket.create_connection((address.hostname, address.port), timeout=DEADLINE_S)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: list = []
        self.sock.sendall(self.ws.send(Request(host=address.netloc, target=f"/ws?user_id={user}")))
        assert isinstance(self.next_event(), AcceptConnection)

    def next_event(self, timeout: float = DEADLINE_S):
        deadline = time.monotonic() + timeout
        while not self.pending:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()


def test_a_client_that_answers_pings_stays_and_gets_its_messages(base_url, user_id, r) -> None:
    client = RawClient(base_url, user_id)
    try:
        wait_until(lambda: drainer_pids(r, user_id))
        pings = 0
        while pings < 3:  # three ping intervals
            event = client.next_event()
            assert isinstance(event, Ping), event
            client.sock.sendall(client.ws.send(event.response()))
            pings += 1
        r.lpush(f"user_{user_id}_messages", "after the pings")
        event = client.next_event()
        while isinstance(event, Ping):
            client.sock.sendall(client.ws.send(event.response()))
            event = client.next_event()
        assert isinstance(event, TextMessage)
        assert json.loads(event.data)["data"] == "after the pings"
    finally:
        client.close()


def test_a_client_that_stops_answering_pings_is_closed_and_let_go(base_url, user_id, r) -> None:
    client = RawClient(base_url, user_id)
    try:
        wait_until(lambda: drainer_pids(r, user_id))
        assert isinstance(client.next_event(), Ping)
        event = client.next_event()  # no answer: the next interval closes
        assert isinstance(event, CloseConnection), event
        assert event.code == 1008
        assert event.reason == "ping timeout"
        wait_until(lambda: not drainer_pids(r, user_id), what="the connection to be released")
    finally:
        client.close()


def test_per_message_compression_is_not_negotiated(base_url, user_id, r) -> None:
    # websockets, like browsers, offers permessage-deflate.
    with open_ws(base_url, {"user_id": user_id}) as ws:
        offered = ws.request.headers.get("Sec-WebSocket-Extensions")
        assert offered and "permessage-deflate" in offered
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        r.lpush(f"user_{user_id}_messages", "x" * 2000)
        assert json.loads(ws.recv(timeout=DEADLINE_S))["data"] == "x" * 2000
