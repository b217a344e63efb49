"""Two promises of the README's "Redis going away" and "Restarts", end to end through real
gunicorn: SIGHUP replaces the workers and loses nothing, and connections that are open
while Redis is away stay open, then carry what is pushed once it is back, once each.

Each test has its own Redis and gunicorn: one signals the master, the other stops Redis.
"""

from __future__ import annotations

import signal
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import redis
from clients import open_sse, open_ws, wait_until, ws_frames
from resuming import ResumingClient, assert_every_client_got_all_in_order
from servers import Gunicorn, RedisServer, service_env

from tests.harness.redis_servers import start_redis

pytestmark = pytest.mark.e2e

#: Seconds gunicorn may take to have both new workers serving after a SIGHUP.
RELOAD_S = 30.0
#: Heartbeats (1 s each here) Redis stays away while connections are open.
AWAY_HEARTBEATS = 6


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A Redis of this test alone, with an append-only file synced at every write, so that
    one stopped and started again comes back with every message."""
    server = start_redis(tmp_path / "redis", appendfsync="always")
    yield server
    server.stop()


@pytest.fixture
def own_service(own_redis, tmp_path) -> Iterator[Gunicorn]:
    env = service_env(
        own_redis.url,
        PUSH_DEMO="1",
        PUSH_HEARTBEAT_S="1",
        PUSH_WS_PING_S="1",
        PUSH_RECONNECT_SPREAD_S="1",
    )
    server = Gunicorn(tmp_path / "gunicorn.log", env).start()
    yield server
    server.stop()


def status_of(base_url: str, path: str) -> int:
    try:
        with urllib.request.urlopen(base_url + path, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_sighup_replaces_the_workers_and_loses_nothing(own_service, own_redis):
    """Messages pushed before, during and after a SIGHUP reach a client that resumes by
    event id (Last-Event-ID over SSE, last_event_id over WebSocket): all, once, in order."""
    producer = redis.Redis.from_url(own_redis.url, decode_responses=True)
    mailbox, presence = "user_reloaded_messages", "{user_reloaded_messages}:presence"
    clients = [ResumingClient(own_service.base_url, "reloaded", t) for t in ("sse", "ws")]
    for client in clients:
        client.start()
    try:
        wait_until(lambda: producer.zcard(presence) == 2, what="both clients connected")
        sent = 0
        for _ in range(50):  # before
            producer.lpush(mailbox, str(sent))
            sent += 1
        old_workers = own_service.worker_pids()
        ready_before = own_service.log().count("Worker ready")
        own_service.process.send_signal(signal.SIGHUP)

        def push_one_and_check_replaced() -> bool:
            """During: one message per poll until both new workers serve, the old gone."""
            nonlocal sent
            producer.lpush(mailbox, str(sent))
            sent += 1
            workers = own_service.worker_pids()
            return (
                len(workers) == 2
                and not workers & old_workers
                and own_service.log().count("Worker ready") >= ready_before + 2
            )

        wait_until(push_one_and_check_replaced, timeout=RELOAD_S, what="the new workers")
        during = sent - 50
        for _ in range(50):  # after
            producer.lpush(mailbox, str(sent))
            sent += 1
        assert during > 0
        assert_every_client_got_all_in_order(clients, sent)
        # The HUP reached them: each was cut from an old worker and came back.
        for client in clients:
            assert client.reconnects >= 1, client.transport
        ws_client = next(client for client in clients if client.transport == "ws")
        assert 1012 in ws_client.close_codes
    finally:
        for client in clients:
            client.stop()
        producer.close()


def test_open_connections_stay_open_while_redis_is_away(own_service, own_redis):
    """Redis stops and starts again on its port: the open SSE stream and WebSocket keep
    their heartbeats meanwhile, and then carry what is pushed, once each, with no
    reconnect (the very same connections read it)."""
    url = own_service.base_url
    mailbox, presence = "user_steadfast_messages", "{user_steadfast_messages}:presence"
    producer = redis.Redis.from_url(own_redis.url, decode_responses=True)
    with (
        open_sse(url, {"user_id": "steadfast"}) as stream,
        open_ws(url, {"user_id": "steadfast"}) as ws,
    ):
        stream.wait_for_comment("connected")
        wait_until(lambda: producer.zcard(presence) == 2, what="both connections")
        producer.lpush(mailbox, "before")
        assert stream.next_event().data == "before"
        assert ws_frames(ws, 1)[0]["data"] == "before"
        producer.close()

        own_redis.process.terminate()  # SHUTDOWN: the AOF is written
        own_redis.process.wait(timeout=10)
        wait_until(lambda: status_of(url, "/readyz") == 503, what="the service to notice")
        # Away for several heartbeats (the pump re-reads the history every 4): heartbeats
        # keep coming, the WebSocket answers pings.
        for _ in range(AWAY_HEARTBEATS):
            stream.wait_for_comment("keepalive", timeout=5)
            assert ws.ping().wait(timeout=5)
        assert status_of(url, "/readyz") == 503  # still away while they did

        own_redis.start()
        wait_until(lambda: status_of(url, "/readyz") == 200, what="readiness to come back")
        producer = redis.Redis.from_url(own_redis.url, decode_responses=True)
        try:
            producer.lpush(mailbox, "after 1", "after 2")
            assert [event.data for event in stream.events(2)] == ["after 1", "after 2"]
            assert [frame["data"] for frame in ws_frames(ws, 2)] == ["after 1", "after 2"]
            # Nothing between (no "before" again): the next is the next pushed.
            producer.lpush(mailbox, "after 3")
            assert stream.next_event().data == "after 3"
            assert ws_frames(ws, 1)[0]["data"] == "after 3"
            assert producer.zcard(presence) == 2
        finally:
            producer.close()
