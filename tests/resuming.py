"""Clients that reconnect by themselves and resume by event id, as browsers do.

Each runs in a thread, records every payload it receives (deduplicated by event
id, as a page would) and counts its reconnects. Payloads are sequence numbers,
so a test can say exactly what is missing, duplicated or out of order.

A dropped connection (the network, the server closing, a refused handshake) is what the
client exists to ride out: it reconnects. Anything else (a frame it cannot parse, a bug in
the test) is kept in `errors`, never swallowed, and `assert_behaved` fails on it, on a
duplicate, and on a refusal the test did not expect.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import threading
import time
import traceback

import redis
from clients import open_sse, open_ws, wait_until
from websockets.exceptions import WebSocketException

#: What a dropped or refused connection raises (a refused WebSocket handshake is a
#: WebSocketException too): the client reconnects after these.
DROPS = (OSError, http.client.HTTPException, WebSocketException)

#: Seconds between a dropped connection and the next attempt (a browser waits `retry:`).
RECONNECT_DELAY_S = 0.2


class ResumingClient(threading.Thread):
    def __init__(self, base_url: str, user_id: str, transport: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.user_id = user_id
        self.transport = transport
        self.last_id: str | None = None
        self.received: list[str] = []
        self.seen_ids: set[str] = set()
        self.duplicates = 0
        self.reconnects = 0
        self.close_codes: list[int] = []
        self.refusals: list[int] = []
        #: Exceptions other than a drop, as formatted tracebacks.
        self.errors: list[str] = []
        self._stop_event = threading.Event()
        self._current = None

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                if self.transport == "sse":
                    self._read_sse()
                else:
                    self._read_ws()
            except DROPS:  # a drop: come back, as a browser does
                pass
            except Exception:  # not a drop: keep it for the test to fail on, and come back
                if not self._stop_event.is_set():  # (stop() closes the connection under it)
                    self.errors.append(traceback.format_exc())
            if not self._stop_event.is_set():
                self.reconnects += 1
                self._stop_event.wait(RECONNECT_DELAY_S)

    def _record(self, event_id: str, data: str) -> None:
        if event_id in self.seen_ids:
            self.duplicates += 1
            return
        self.seen_ids.add(event_id)
        self.last_id = event_id
        self.received.append(data)

    def _read_sse(self) -> None:
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        stream = open_sse(self.base_url, {"user_id": self.user_id}, headers, timeout=5)
        self._current = stream
        try:
            if stream.status != 200:
                self.refusals.append(stream.status)
                return
            while not self._stop_event.is_set():
                event = stream.next_event(timeout=3600)
                if event.event == "message":
                    self._record(event.id, event.data)
        finally:
            stream.close()

    def _read_ws(self) -> None:
        params = {"user_id": self.user_id}
        if self.last_id:
            params["last_event_id"] = self.last_id
        try:
            ws = open_ws(self.base_url, params, timeout=5)
        except Exception as error:
            status = getattr(getattr(error, "response", None), "status_code", None)
            if status:
                self.refusals.append(status)
            raise
        self._current = ws
        try:
            while not self._stop_event.is_set():
                try:
                    frame = json.loads(ws.recv())
                except Exception:
                    if ws.close_code is not None:
                        self.close_codes.append(ws.close_code)
                    raise
                if "data" in frame:
                    self._record(frame["id"], frame["data"])
        finally:
            ws.close()

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.received) >= count

    def stop(self) -> None:
        self._stop_event.set()
        current = self._current
        if current is not None:
            with contextlib.suppress(Exception):
                current.close()
        self.join(timeout=10)


def assert_behaved(client: ResumingClient, refusals: frozenset[int] = frozenset()) -> None:
    """The client saw no event id twice, raised nothing but drops, and was refused only
    with the statuses in `refusals` (503 while Redis is away, say)."""
    assert client.errors == [], "\n".join(client.errors)
    assert client.duplicates == 0, (client.transport, client.duplicates)
    assert set(client.refusals) <= refusals, (client.transport, client.refusals)


def sequence_problems(received: list[str], expected: int) -> dict[str, list[int]]:
    """What is wrong with a run of sequence numbers 0..expected-1: missing, out of order."""
    numbers = [int(payload) for payload in received]
    missing = sorted(set(range(expected)) - set(numbers))
    out_of_order = [b for a, b in itertools.pairwise(numbers) if b <= a]
    return {"missing": missing, "out_of_order": out_of_order}


def push_until_accepted(producer: redis.Redis, mailbox: str, payload: str) -> None:
    """LPUSH as a producer does through a failover: retry until the new primary takes it
    (the producer's client follows the sentinel or the cluster)."""
    wait_until(lambda: _try_push(producer, mailbox, payload), timeout=30, what="a new primary")


def _try_push(producer: redis.Redis, mailbox: str, payload: str) -> bool:
    try:
        producer.lpush(mailbox, payload)
        return True
    except (
        redis.ConnectionError,
        redis.ReadOnlyError,
        redis.TimeoutError,
        redis.exceptions.ClusterError,
    ):
        return False


def assert_every_client_got_all_in_order(clients: list[ResumingClient], total: int) -> None:
    """Every client received the payloads 0..total-1, none missing, none out of order,
    none twice; a refusal it met was a 503 (Redis away, during a failover)."""
    for client in clients:
        assert client.wait_for(total, timeout=60), (client.transport, len(client.received))
        assert sequence_problems(client.received, total) == {"missing": [], "out_of_order": []}
        assert_behaved(client, refusals=frozenset({503}))
