"""push/storage/parser.py: the readiness check redis-py runs before every pooled command and
in every pub/sub wait, against a real Redis: same answers as redis-py's, and under gevent
no greenlet switch for a zero-timeout check."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from clients import wait_until
from servers import run_for_json

from push.storage.parser import CooperativeHiredisParser

SCRIPT = Path(__file__).parent / "gevent_readiness.py"


@pytest.fixture
def connection(redis_server):
    conn = redis.Connection(
        host="127.0.0.1",
        port=redis_server.port,
        parser_class=CooperativeHiredisParser,
        socket_timeout=5,
    )
    conn.connect()
    yield conn
    conn.disconnect()


def test_an_idle_connection_cannot_be_read(connection):
    assert connection.can_read() is False


def test_a_reply_waiting_on_the_socket_can_be_read_and_is_left_there(connection):
    connection.send_command("PING")
    wait_until(connection.can_read, what="the reply")
    assert connection.can_read() is True  # the check peeks: the reply is still there
    assert connection.read_response() == b"PONG"
    assert connection.can_read() is False


def test_a_wait_with_a_timeout_returns_false_after_it(connection):
    started = time.monotonic()
    assert connection.can_read(timeout=0.2) is False
    assert time.monotonic() - started >= 0.19


def test_a_pubsub_wait_returns_the_message_that_comes(redis_server):
    pool = redis.ConnectionPool(
        host="127.0.0.1", port=redis_server.port, parser_class=CooperativeHiredisParser
    )
    subscriber = redis.Redis(connection_pool=pool).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe("readiness")
    assert subscriber.get_message(timeout=2) is None  # the subscribe confirmation
    redis.Redis(host="127.0.0.1", port=redis_server.port).publish("readiness", "hello")
    message = subscriber.get_message(timeout=5)
    assert message is not None and message["data"] == b"hello"
    subscriber.close()
    pool.disconnect()


def test_a_connection_the_server_closed_is_refused(connection, redis_server):
    connection.send_command("CLIENT", "ID")
    client_id = connection.read_response()
    redis.Redis(host="127.0.0.1", port=redis_server.port).execute_command(
        "CLIENT", "KILL", "ID", client_id
    )

    def refused() -> bool:
        try:
            connection.can_read()
        except redis.ConnectionError:
            return True
        return False

    wait_until(refused, what="the closed connection to be refused")


@pytest.fixture(scope="module")
def under_gevent(redis_server) -> dict:
    """tests/gevent_readiness.py's figures, from a gevent-patched process."""
    return run_for_json([str(SCRIPT), redis_server.url, "200"])


def test_under_gevent_the_service_client_checks_without_switching_greenlets(under_gevent):
    """redis-py's own check, under gevent, starts a Timeout and runs the hub (thousands of
    switches of a busy greenlet per pooled command here); the service's client makes none."""
    measured = under_gevent
    assert measured["parser"] == "CooperativeHiredisParser"
    assert measured["switches_per_command"] == 0


def test_under_gevent_a_timed_wait_lets_other_greenlets_run_and_sees_the_server_close(
    under_gevent,
):
    measured = under_gevent
    idle = measured["idle_wait"]
    assert idle["answer"] is False
    assert idle["seconds"] >= 0.29  # the whole timeout (0.3 s), not a quick False
    assert idle["others_ran"] is True  # a wait, not a blocked worker
    assert measured["closed_during_wait"] == "ConnectionError"
