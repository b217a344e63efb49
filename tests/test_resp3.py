"""The watcher's and the wake subscriber's connections (push/storage/resp3.py and
tracking.py) against a real Redis: replies and push messages read with hiredis, in order."""

from __future__ import annotations

import time

import pytest
import redis
from redis.connection import Connection

from push.storage.tracking import TrackedConnection, TrackingRefused, pack


@pytest.fixture
def tracked(redis_server, r):
    connection = TrackedConnection(Connection(host="127.0.0.1", port=redis_server.port, protocol=3))
    connection.open()
    yield connection
    connection.close()


def arm(tracked: TrackedConnection, key: str) -> None:
    assert tracked.execute_packed(pack(("CLIENT", "CACHING", "yes")) + pack(("LLEN", key)), 2)


def test_a_read_arms_one_hint_and_the_connections_own_writes_send_none(tracked, r):
    arm(tracked, "mailbox")
    r.lpush("mailbox", "a")
    r.lpush("mailbox", "b")  # not armed again: nothing more
    time.sleep(0.05)
    tracked.read_available()
    assert tracked.take_invalidated() == [b"mailbox"]
    arm(tracked, "mailbox")
    assert tracked.execute_packed(pack(("RPOP", "mailbox")), 1) == [b"a"]  # NOLOOP
    time.sleep(0.05)
    tracked.read_available()
    assert tracked.take_invalidated() == []


def test_a_hint_that_arrives_with_the_last_reply_is_not_left_unread(tracked, r):
    """The stall of the first watcher: a push read from the socket together with a
    pipeline's last reply stayed in the parser's buffer, and since the socket never
    turned readable for it again, its mailbox waited for the periodic check."""
    arm(tracked, "mailbox")
    tracked.send_packed(pack(("PING",)))
    r.lpush("mailbox", "behind the PONG")
    time.sleep(0.05)  # both in the socket's buffer: one read takes them together
    assert tracked.execute_packed(b"", 1) == [b"PONG"]
    assert tracked.take_invalidated() == [b"mailbox"]


def test_a_flush_invalidates_every_key(tracked, r):
    arm(tracked, "mailbox")
    r.flushall()
    time.sleep(0.05)
    tracked.read_available()
    assert tracked.take_invalidated() == [None]


def test_thousands_of_hints_ahead_of_a_reply_are_all_read(tracked, r):
    """redis-py's read_response recursed once per push ahead of a reply."""
    keys = [f"mailbox{n}" for n in range(3000)]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        data = b"".join(pack(("CLIENT", "CACHING", "yes")) + pack(("LLEN", k)) for k in chunk)
        tracked.execute_packed(data, 2 * len(chunk))
    with r.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.lpush(key, "x")
        pipe.execute()
    assert tracked.execute_packed(pack(("PING",)), 1) == [b"PONG"]
    assert sorted(tracked.take_invalidated()) == sorted(k.encode() for k in keys)


def test_error_replies_are_answers_not_exceptions(tracked, r):
    r.set("text", "x")
    answers = tracked.execute_packed(pack(("LLEN", "text")) + pack(("PING",)), 2)
    assert "WRONGTYPE" in str(answers[0])
    assert answers[1] == b"PONG"


def test_a_server_that_will_not_track_is_refused_with_the_reason(redis_server, r):
    r.acl_setuser(
        "notrack", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-client"]
    )
    connection = TrackedConnection(
        Connection(
            host="127.0.0.1", port=redis_server.port, protocol=3, username="notrack", password="pw"
        )
    )
    try:
        with pytest.raises(TrackingRefused, match="client"):
            connection.open()
    finally:
        r.acl_deluser("notrack")


def test_the_closed_connection_says_so(tracked):
    tracked.close()
    with pytest.raises(redis.ConnectionError):
        tracked.execute_packed(pack(("PING",)), 1)
