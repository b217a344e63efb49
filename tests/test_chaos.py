"""The chaos suite, short: numbered messages through worker kills, Redis restarts, churn,
slow consumers, silent cuts and a browser; plus one regression test per fault it found.

`make chaos` runs the full version (chaos/run.py, both `appendfsync` settings, results in
chaos/RESULTS.md). Each fault found is a regression test here, named after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from clients import open_sse, wait_until
from resuming import ResumingClient, assert_behaved
from servers import Gunicorn, service_env

from chaos.browser import run_browser
from chaos.config import QUICK
from chaos.one_run import run_chaos
from push.model.keys import user_keys
from push.storage.server import RedisServer
from tests.harness.redis_servers import start_redis

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("watch", ["notify", "block"])
def test_a_short_chaos_run_loses_nothing_and_leaks_nothing(tmp_path, watch):
    result = run_chaos(dataclasses.replace(QUICK, watch=watch), tmp_path, say=lambda line: None)
    d = result.delivery
    assert d["reordered"] == 0, d["reorder_examples"]
    assert d["lost_other"] == 0, d["incomplete_clients"]
    assert d["dup_ids_same_connection"] == 0
    assert result.after["ok"], result.after.get("why")
    assert not result.workers["wedged"], result.workers
    assert len(result.faults) == QUICK.worker_kills + len(QUICK.redis_restarts)
    assert result.clients["churn_started"] == QUICK.churn
    for cut in result.clients["silent_cuts"]:
        assert cut["cut"] and cut["client_noticed_s"] is not None, cut
        assert cut["server_released_s"] is not None, cut
    assert d["lost_skipped_on_resume"] == 0, d["incomplete_clients"]
    assert d["lost_stuck_in_mailbox"] == 0, d["incomplete_clients"]
    assert result.ok, result.problems()


@pytest.mark.browser
def test_chromium_gets_every_message_in_order_through_kills_and_a_restart(browser, tmp_path):
    result = run_browser(browser, tmp_path, messages=120, rate=30.0)
    assert result.missing == {"sse": [], "ws": []}, result
    assert result.reordered == {"sse": 0, "ws": 0}, result
    assert not result.sse_gave_up
    # The SSE resume was the browser's own: a reconnect that carried Last-Event-ID.
    assert result.resumed_with_last_event_id > 0, result
    assert 1012 in result.ws_close_codes  # the restart said so to the WebSocket


# --- Regression tests of the faults the chaos runs found -------------------------------


@dataclass
class OneWorker:
    """Its own Redis and a gunicorn with one gevent worker: every connection meets there."""

    url: str
    port: int
    r: redis.Redis
    redis_server: RedisServer


@contextlib.contextmanager
def one_worker(tmp_path: Path, **settings: str) -> Iterator[OneWorker]:
    """With a Redis that keeps everything it acknowledged across a restart (AOF, always)."""
    server = start_redis(tmp_path / "redis", appendfsync="always")
    env = service_env(server.url, PUSH_DEMO="1", PUSH_HEARTBEAT_S="1", **settings)
    gunicorn = Gunicorn(tmp_path / "gunicorn.log", env, workers=1)
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        gunicorn.start()
        yield OneWorker(gunicorn.base_url, gunicorn.port, client, server)
    finally:
        client.close()
        gunicorn.stop()
        server.stop()


class Reader(threading.Thread):
    """Reads one SSE stream to the end in a thread, keeping event ids and payloads."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.events: list[tuple[str, str]] = []

    def run(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                event = self.stream.next_event(timeout=60)
                self.events.append((event.id, event.data))


class Pusher(threading.Thread):
    """LPUSHes payloads numbered `first`.. (`count` of them, `size` bytes each), one every
    `interval_s`."""

    def __init__(
        self, r: redis.Redis, user_id: str, count: int, size: int, interval_s: float, first=0
    ):
        super().__init__(daemon=True)
        self.r, self.mailbox = r, f"user_{user_id}_messages"
        self.count, self.pad, self.interval_s = count, "x" * size, interval_s
        self.first = first
        self.stop_event = threading.Event()

    def run(self) -> None:
        for n in range(self.first, self.first + self.count):
            if self.stop_event.wait(self.interval_s):  # pacing: a steady producer
                return
            self.r.lpush(self.mailbox, f"{n} {self.pad}")


def stall_then_overflow(r: redis.Redis, user_id: str) -> None:
    """Fill a stalled reader's socket one message at a time, so that its writer is sure to
    be blocked in a write, then overflow its outbox (PUSH_OUTBOX_MAX=20) behind it."""
    for pusher in (Pusher(r, user_id, 30, 4000, 0.02), Pusher(r, user_id, 120, 4000, 0.002, 30)):
        pusher.start()
        pusher.join(timeout=30)


def stalled_stream(port: int, user_id: str) -> socket.socket:
    """A client that asks for a stream and then never reads: its window closes. A small
    MSS keeps the server's send buffer small (on loopback it would grow to megabytes)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /stream?user_id={user_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def test_a_resume_while_the_pump_reads_skips_to_the_other_connections_cursor(tmp_path):
    """A tab resuming from an older id on a worker where its user already has a live
    connection must get the entry right after its id, never a later one."""
    with one_worker(tmp_path) as service:
        live = open_sse(service.url, {"user_id": "racer"})
        live.wait_for_comment("connected")
        reader = Reader(live)
        reader.start()
        pusher = Pusher(service.r, "racer", 5000, 2000, 0.002)
        pusher.start()
        history = user_keys("racer", "user_{user_id}_messages").history
        skipped = []
        try:
            wait_until(lambda: service.r.xlen(history) > 60, what="some history")
            for _ in range(30):
                ids = [entry_id for entry_id, _ in service.r.xrange(history, "-", "+")]
                cursor = ids[-50]
                with open_sse(service.url, {"user_id": "racer"}, {"Last-Event-ID": cursor}) as s:
                    first = s.next_event().id
                if first != ids[-49]:
                    skipped.append((cursor, ids[-49], first))
        finally:
            pusher.stop_event.set()
            pusher.join(timeout=10)
            live.close()
        assert skipped == []


def test_a_reader_that_stops_reading_starves_the_other_tabs_of_its_user(tmp_path):
    with one_worker(tmp_path, PUSH_OUTBOX_MAX="20", PUSH_DRAIN_BATCH="10") as service:
        fast = open_sse(service.url, {"user_id": "stall"})
        fast.wait_for_comment("connected")
        reader = Reader(fast)
        reader.start()
        stalled = stalled_stream(service.port, "stall")
        try:
            stall_then_overflow(service.r, "stall")
            wait_until(lambda: len(reader.events) == 150, timeout=4, what="all 150 at the fast tab")
        finally:
            stalled.close()
            fast.close()


def test_a_reader_that_stops_reading_is_disconnected_once_its_outbox_overflows(tmp_path):
    with one_worker(tmp_path, PUSH_OUTBOX_MAX="20", PUSH_DRAIN_BATCH="10") as service:
        presence = user_keys("loris", "user_{user_id}_messages").presence
        stalled = stalled_stream(service.port, "loris")
        try:
            wait_until(lambda: service.r.zcard(presence) == 1, what="the stalled connection")
            stall_then_overflow(service.r, "loris")
            wait_until(lambda: service.r.zcard(presence) == 0, timeout=4, what="its release")
        finally:
            stalled.close()


def test_an_outbox_smaller_than_the_drain_batch_still_lets_a_client_catch_up(tmp_path):
    """Both settings are valid alone (PUSH_DRAIN_BATCH defaults to 200); a client more than
    PUSH_OUTBOX_MAX messages behind is cut before anything is written, at every attempt."""
    with one_worker(tmp_path, PUSH_OUTBOX_MAX="10") as service:
        service.r.lpush("user_behind_messages", *[str(n) for n in range(50)])
        client = ResumingClient(service.url, "behind", "sse")
        client.start()
        try:
            assert client.wait_for(50, timeout=4), (len(client.received), client.reconnects)
            assert_behaved(client)
        finally:
            client.stop()


def test_a_mover_lease_left_while_redis_was_away_does_not_block_the_user(tmp_path):
    """The user's last tab closes while Redis restarts; the next tab must get new mail."""
    with one_worker(tmp_path) as service:
        mover = user_keys("leaser", "user_{user_id}_messages").mover
        with open_sse(service.url, {"user_id": "leaser"}) as first:
            first.wait_for_comment("connected")
            service.r.lpush("user_leaser_messages", "before")
            assert first.next_event().data == "before"
            service.redis_server.process.terminate()  # Redis goes away (SHUTDOWN on SIGTERM)
            service.redis_server.process.wait(timeout=10)
        # The tab has closed while Redis was away, leaving the lease in the AOF. It is read
        # from the file: once Redis is back the worker may give the lease back before a
        # client of the test could see it there.
        files = (service.redis_server.data_dir / "appendonlydir").glob("*.aof")
        assert mover.encode() in b"".join(path.read_bytes() for path in files), "the lease"
        service.redis_server.start()
        r = redis.Redis.from_url(service.redis_server.url, decode_responses=True)
        try:
            with open_sse(service.url, {"user_id": "leaser"}) as second:
                second.wait_for_comment("connected")
                r.lpush("user_leaser_messages", "after")
                try:
                    data = second.next_event(timeout=8).data
                except TimeoutError:
                    data = f"nothing; the lease is still {r.get(mover)}, for {r.pttl(mover)} ms"
                assert data == "after"
        finally:
            r.close()
