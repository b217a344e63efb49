"""Real clients for the end-to-end tests: raw HTTP for SSE, websockets for /ws.

The SSE reader parses the stream as the EventSource specification says
(fields, comments, multi-line data) so that the tests see what a browser sees.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import redis
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import ClientConnection, connect

# Tests import these two from here; they are the shared harness's.
from tests.harness.waits import DEADLINE_S, wait_until


@dataclass
class SseEvent:
    data: str
    id: str | None = None
    event: str = "message"


@dataclass
class SseStream:
    """One open `GET /stream` response, read line by line.

    The socket is kept from the start: for a response that closes the connection when it
    ends (a short answer with `retry:`), http.client hands the socket to the response and
    leaves `connection.sock` None at once, while the body is still to read."""

    connection: http.client.HTTPConnection
    response: http.client.HTTPResponse
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    last_event_id: str | None = None
    sock: socket.socket | None = None

    def __post_init__(self) -> None:
        if self.sock is None:
            self.sock = self.connection.sock

    def _timeout(self, seconds: float) -> None:
        if self.sock is None:
            raise ConnectionError("the stream has no socket")
        self.sock.settimeout(seconds)

    @property
    def status(self) -> int:
        return self.response.status

    def header(self, name: str) -> str | None:
        return self.response.getheader(name)

    def next_event(self, timeout: float = DEADLINE_S) -> SseEvent:
        """The next dispatched event; comments and retry lines are recorded on the way."""
        deadline = time.monotonic() + timeout
        data: list[str] = []
        event_id: str | None = None
        event_type = "message"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no SSE event before the deadline")
            self._timeout(remaining)
            raw = self.response.readline()
            if not raw:
                raise ConnectionError("the server closed the stream")
            line = raw.decode().rstrip("\n")
            if line.endswith("\r"):
                line = line[:-1]
            if line == "":
                if data:
                    if event_id is not None:
                        self.last_event_id = event_id
                    return SseEvent("\n".join(data), event_id, event_type)
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                self.comments.append(value)
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value
            elif name == "event":
                event_type = value
            elif name == "retry" and value.isdigit():
                self.retry = int(value)

    def events(self, count: int, timeout: float = DEADLINE_S) -> list[SseEvent]:
        return [self.next_event(timeout) for _ in range(count)]

    def wait_for_comment(self, text: str, timeout: float = DEADLINE_S) -> None:
        """Read until a comment `text` arrives (no event may arrive meanwhile)."""
        deadline = time.monotonic() + timeout
        seen = len(self.comments)
        while text not in self.comments[seen:]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no ': {text}' comment before the deadline")
            self._timeout(remaining)
            raw = self.response.readline()
            if not raw:
                raise ConnectionError("the server closed the stream")
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                self.comments.append(line[1:].lstrip(" "))
            elif line.startswith("retry:"):
                self.retry = int(line.partition(":")[2])
            elif line:
                raise AssertionError(f"unexpected line while waiting for a comment: {line!r}")

    def read_to_end(self, timeout: float = DEADLINE_S) -> bytes:
        self._timeout(timeout)
        return self.response.read()

    def close(self) -> None:
        """Hang up the way a closed tab does: the TCP connection goes away."""
        sock = self.connection.sock or self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.connection.close()

    def __enter__(self) -> SseStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_sse(
    base_url: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = DEADLINE_S,
) -> SseStream:
    """`GET /stream` and read the response head; the body is left to read."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = "/stream" + ("?" + urlencode(params) if params else "")
    connection.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
    sock = connection.sock
    return SseStream(connection, connection.getresponse(), sock=sock)


def open_ws(
    base_url: str,
    params: dict[str, str] | None = None,
    timeout: float = DEADLINE_S,
    headers: dict[str, str] | None = None,
) -> ClientConnection:
    url = base_url.replace("http://", "ws://", 1) + "/ws"
    if params:
        url += "?" + urlencode(params)
    headers = dict(headers or {})
    origin = headers.pop("Origin", None)
    return connect(
        url,
        origin=origin,
        additional_headers=headers,
        open_timeout=timeout,
        close_timeout=2,
        max_size=None,
        legacy=True,
    )


def ws_frames(ws: ClientConnection, count: int, timeout: float = DEADLINE_S) -> list[dict]:
    """The next `count` JSON frames, all within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    frames = []
    for _ in range(count):
        frames.append(json.loads(ws.recv(timeout=max(0.0, deadline - time.monotonic()))))
    return frames


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def drainer_pids(r, user_id: str) -> set[str]:
    """Worker pids draining this user: the holder of the user's mover lease (a worker's
    mailbox watcher, or a blocking mover) and any mover blocked in Redis for it."""
    holder = r.get(f"{{user_{user_id}_messages}}:mover")
    pids = mover_pids(r, user_id)
    if holder:
        pids.add(_text(holder).split(":")[1])
    return pids


def mover_pids(r, user_id: str) -> set[str]:
    """Worker pids whose blocking mover for this user is blocked in Redis (CLIENT LIST)."""
    suffix = f":user_{user_id}_messages"
    names = [_text(client["name"]) for client in redis_clients(r)]
    return {
        name.split(":")[2]
        for name in names
        if name.startswith("push:mover:") and name.endswith(suffix)
    }


def redis_clients(r) -> list[dict]:
    """CLIENT LIST of the Redis, or of every primary of a cluster."""
    if isinstance(r, redis.RedisCluster):
        return [
            client
            for node in r.get_primaries()
            for client in r.get_redis_connection(node).client_list()
        ]
    return r.client_list()


def connection_pids(r, user_id: str) -> set[str]:
    """Worker pids holding a connection of this user (the presence registry's ids)."""
    members = r.zrange(f"{{user_{user_id}_messages}}:presence", 0, -1)
    return {_text(member).split(":")[1] for member in members}


def keys_of(r, *user_ids: str) -> list[str]:
    """The keys in Redis that belong to these users (other tests' users may still be
    writing as their connections close, so a test asks only about its own)."""
    names = [f"user_{user_id}_messages" for user_id in user_ids]
    return sorted(key for key in map(_text, r.keys("*")) if any(name in key for name in names))


def open_concurrently(base_url: str, user_id: str, count: int, extra: dict | None = None):
    """`count` connections of a user opened at once, SSE and WebSocket alternately.

    Opened one after another, connections tend to land on whichever worker is idle
    first; opened together, they spread over the workers."""
    from concurrent.futures import ThreadPoolExecutor

    params = {"user_id": user_id, **(extra or {})}

    def one(index: int):
        if index % 2:
            return open_ws(base_url, params)
        stream = open_sse(base_url, params)
        stream.wait_for_comment("connected")
        return stream

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def open_on_both_workers(base_url: str, r, user_id: str) -> list:
    """Tabs of the user (SSE and WebSocket) until both workers hold some (at most 24)."""
    presence = f"{{user_{user_id}_messages}}:presence"
    clients = []
    for _ in range(3):
        clients += open_concurrently(base_url, user_id, 8)
        opened = len(clients)
        wait_until(lambda opened=opened: r.zcard(presence) == opened)
        if len(connection_pids(r, user_id)) == 2:
            return clients
    for client in clients:
        client.close()
    raise AssertionError("the tabs never spanned both workers")


def tabs_receive(clients: list, payloads: list[str], timeout: float) -> None:
    """Each tab (an SseStream or a WebSocket) receives exactly `payloads` next, within
    `timeout` seconds from now."""
    deadline = time.monotonic() + timeout
    for client in clients:
        got = []
        for _ in payloads:
            left = max(0.001, deadline - time.monotonic())
            if isinstance(client, SseStream):
                got.append(client.next_event(timeout=left).data)
            else:
                got.append(ws_frames(client, 1, timeout=left)[0]["data"])
        assert got == payloads


def metric_sum(base_url: str, family: str, labels: dict[str, str] | None = None) -> float:
    """The sum of a metric family's samples on /metrics (all of them, or those with exactly
    `labels`): summed over gunicorn's workers by the service itself."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode())
        return sum(
            sample.value
            for each in families
            if each.name == family
            for sample in each.samples
            if sample.name in (family, family + "_total")
            and (labels is None or sample.labels == labels)
        )


def closed_count(base_url: str, transport: str, reason: str) -> float:
    """Streams closed so far with `reason`, over `transport`."""
    return metric_sum(
        base_url, "push_connections_closed", {"transport": transport, "reason": reason}
    )
