"""Delivered marks written in batches (push/delivery/marks.py), against a real Redis and cluster."""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest

from push.delivery import backoff as backoff_module
from push.delivery.marks import DeliveredMarks
from push.model.entries import Entry, history_entry
from push.model.keys import user_keys
from push.rules.marks import MARK_CHUNK
from push.storage.server import RedisServer
from push.storage.store import Store
from tests.harness import waits

MAILBOX = "user_{user_id}_messages"


@pytest.fixture(params=["redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def entry(n: int) -> Entry:
    return history_entry(f"{1_700_000_000_000 + n}-0", n, f"m{n}")


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Let the marks' greenlet run until `condition` holds."""
    waits.wait_until(condition, timeout_s, 0.01, "the condition", sleep=gevent.sleep)


class CountingStore(Store):
    """The real store, counting the batches (one round trip each) it is asked to write,
    whether they go or not."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []
        self.ack_batches: list[list[str]] = []

    def mark_delivered_many(self, marks, ttl_s, acks=()):
        self.batches.append(len(marks))
        self.ack_batches.append([event_id for _, event_id in acks])
        super().mark_delivered_many(marks, ttl_s, acks)


def counting_store(store: Store) -> CountingStore:
    return CountingStore(store.url, pool_size=2, block_s=1, cluster=store.cluster)


def test_the_marks_of_many_users_go_in_few_round_trips(store: Store, r) -> None:
    counting = counting_store(store)
    marks = DeliveredMarks(counting, ttl_s=60)
    users = [user_keys(str(i), MAILBOX) for i in range(MARK_CHUNK + 100)]
    marked: list[str] = []
    for i, keys in enumerate(users):
        marks.note(keys, entry(i + 1), lambda keys=keys: marked.append(keys.mailbox))
    wait_until(lambda: len(marked) == len(users))
    assert counting.batches == [MARK_CHUNK, 100]
    assert sorted(marked) == sorted(keys.mailbox for keys in users)
    for i, keys in enumerate(users):
        assert store.delivered_mark(keys) == entry(i + 1).id
    counting.close()


def test_a_user_is_marked_at_its_newest_entry_never_back(store: Store, r) -> None:
    marks = DeliveredMarks(store, ttl_s=60)
    keys = user_keys("1", MAILBOX)
    for n in (3, 7, 5):  # two tabs report out of order: the newest wins
        marks.note(keys, entry(n), lambda: None)
    wait_until(lambda: store.delivered_mark(keys) == entry(7).id)
    done: list[int] = []
    marks.note(keys, entry(6), lambda: done.append(6))  # older than the mark in Redis
    wait_until(lambda: done == [6])
    assert store.delivered_mark(keys) == entry(7).id
    assert r.ttl(keys.state) > 0


def test_marks_wait_while_redis_is_away_and_go_when_it_is_back(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(backoff_module, "RETRY_CAP_S", 0.2)
    server = RedisServer(tmp_path / "redis").start()
    store = CountingStore(server.url, pool_size=2, block_s=1)
    marks = DeliveredMarks(store, ttl_s=60)
    keys = user_keys("1", MAILBOX)
    try:
        server.stop()
        marked: list[int] = []
        marks.note(keys, entry(1), lambda: marked.append(1))
        marks.note(keys, entry(2), lambda: marked.append(2))
        wait_until(lambda: len(store.batches) >= 2)  # tried, failed, tried again
        assert marked == []
        server = RedisServer(tmp_path / "redis", port=server.port).start()
        wait_until(lambda: marked == [2])
        assert store.delivered_mark(keys) == entry(2).id
    finally:
        store.close()
        server.stop()


def test_acks_go_with_the_marks_the_newest_of_each_user_once(store: Store, r) -> None:
    counting = counting_store(store)
    marks = DeliveredMarks(counting, ttl_s=60)
    keys = user_keys("1", MAILBOX)
    marks.note(keys, entry(300), lambda: None)  # written in the same flush, before the acks
    for n in range(1, 301):  # a burst, one flush: only the newest goes
        marks.acknowledge(keys, entry(n).key)
    marks.acknowledge(keys, entry(7).key)  # older than the newest noted
    wait_until(lambda: r.hget(keys.state, "acked_id") == entry(300).id)
    assert counting.ack_batches == [[entry(300).id]]
    counting.close()


def test_an_ack_redis_refuses_holds_back_neither_the_marks_nor_flow_control(
    store: Store, r
) -> None:
    """One user's ack failing in Redis (here its state is not a hash) is logged and
    dropped; the marks of the same batch go, and their writers get their room back."""
    marks = DeliveredMarks(store, ttl_s=60)
    alice, bob = user_keys("alice", MAILBOX), user_keys("bob", MAILBOX)
    r.set(bob.state, "not a hash")
    marks.acknowledge(bob, entry(1).key)
    room_given: list[str] = []
    marks.note(alice, entry(2), lambda: room_given.append("alice"))
    wait_until(lambda: room_given == ["alice"])
    assert r.hget(alice.state, "delivered_id") == entry(2).id
    assert r.get(bob.state) == "not a hash"


def test_the_ack_script_records_only_ids_the_user_was_given(store: Store, r) -> None:
    keys = user_keys("1", MAILBOX)
    assert store.acknowledge(keys, entry(1).id, 60) == -1  # nothing given yet
    r.xadd(keys.history, {"d": "m1", "n": 1}, id=entry(1).id)
    r.xadd(keys.history, {"d": "m2", "n": 2}, id=entry(2).id)
    store.mark_delivered(keys, entry(1), 60)
    assert store.acknowledge(keys, entry(1).id, 60) == 1  # within the delivered mark
    assert store.acknowledge(keys, entry(2).id, 60) == 1  # moved, not yet marked delivered
    assert store.acknowledge(keys, entry(1).id, 60) == 0  # not newer
    assert store.acknowledge(keys, "99999999999999-0", 60) == -1  # never given
    assert store.acknowledge(keys, f"{2**64 - 1}-{2**64 - 1}", 60) == -1
    assert r.hget(keys.state, "acked_id") == entry(2).id
    store.mark_delivered(keys, entry(3), 60)
    assert store.acknowledge(keys, entry(3).id, 60) == 1  # later acks still move
    assert r.hget(keys.state, "acked_id") == entry(3).id


def test_the_ack_script_compares_ids_past_2_to_the_53_exactly(store: Store, r) -> None:
    keys = user_keys("1", MAILBOX)
    r.hset(keys.state, "delivered_id", f"{2**53}-0")
    # As doubles 2^53 + 1 == 2^53: a comparison of numbers would call it given.
    assert store.acknowledge(keys, f"{2**53 + 1}-0", 60) == -1
    assert store.acknowledge(keys, f"{2**53}-0", 60) == 1
    r.hset(keys.state, "delivered_id", f"{2**64 - 1}-{2**64 - 1}")
    assert store.acknowledge(keys, f"{2**64 - 1}-{2**64 - 2}", 60) == 1
    assert store.acknowledge(keys, f"{2**64 - 1}-{2**64 - 3}", 60) == 0
    assert r.hget(keys.state, "acked_id") == f"{2**64 - 1}-{2**64 - 2}"
