"""The drain and mark scripts against a real Redis: order, flow control, trimming, dead letters."""

from __future__ import annotations

import pytest
import redis

from push.delivery.mover import drain, drain_limits
from push.model.entries import Entry, LeaseClaim, carried_entries, split_wake
from push.model.keys import user_keys
from push.model.settings import DeliverySettings, load_config
from push.storage.store import MOVER_LEASE_SAFETY_MS, WAKE_CARRY_BYTES, Store

MAILBOX = "user_{user_id}_messages"


@pytest.fixture
def store(redis_server, r):
    store = Store(redis_server.url, pool_size=4, block_s=1)
    yield store
    store.close()


def settings(**overrides: str) -> DeliverySettings:
    return DeliverySettings.from_config(load_config({"PUSH_DEMO": "1", **overrides}))


def history_entries(store: Store, keys) -> list[Entry]:
    return store.read_after(keys, "0-0", 100_000)[0]


def history(store: Store, keys) -> list[str]:
    return [entry.data for entry in history_entries(store, keys)]


@pytest.fixture
def wakes(r):
    """User 1's wake channel, subscribed."""
    pubsub = r.pubsub()
    pubsub.subscribe(user_keys("1", MAILBOX).wake)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    yield pubsub
    pubsub.close()


def next_wake(wakes) -> tuple[str, bytes]:
    """The next wake's newest id and the entries it carries (still encoded)."""
    message = wakes.get_message(timeout=5)
    assert message["type"] == "message"
    return split_wake(message["data"].encode())


def test_pending_before_mailbox_and_oldest_first(store, r):
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, "m1", "m2")
    r.lpush(keys.pending, "p1")
    result = drain(store, keys, settings())
    assert (result.moved, result.more) == (3, False)
    assert history(store, keys) == ["p1", "m1", "m2"]
    assert r.llen(keys.mailbox) == r.llen(keys.pending) == 0


def test_each_drain_moves_at_most_a_batch(store, r):
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, *range(25))
    config = settings(PUSH_DRAIN_BATCH="10", PUSH_HISTORY_MAX="100")
    assert [drain(store, keys, config).moved for _ in range(4)] == [10, 10, 5, 0]
    assert history(store, keys) == [str(i) for i in range(25)]


def test_the_history_runs_at_most_a_window_ahead_of_the_delivered_mark(store, r):
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, *range(100))
    config = settings(PUSH_DRAIN_BATCH="10", PUSH_HISTORY_MAX="40")  # window 20
    first = drain(store, keys, config)
    second = drain(store, keys, config)
    full = drain(store, keys, config)
    assert (first.moved, second.moved, full.moved, full.room, full.more) == (10, 10, 0, 0, True)
    assert r.llen(keys.mailbox) == 80  # the backlog waits in the mailbox, durable

    entries, _ = store.read_after(keys, "0-0", 100)
    assert store.mark_delivered(keys, entries[14], ttl_s=60)  # 15 of 20 written
    assert drain(store, keys, config).moved == 10
    assert drain(store, keys, config).moved == 5


def test_trimming_drops_only_delivered_entries_and_records_the_newest_dropped(store, r):
    keys = user_keys("1", MAILBOX)
    config = settings(PUSH_DRAIN_BATCH="10", PUSH_HISTORY_MAX="20")  # window 10
    r.lpush(keys.mailbox, *range(50))
    delivered = []
    while True:
        result = drain(store, keys, config)
        if not result.moved:
            break
        entries, _ = store.read_after(keys, delivered[-1].id if delivered else "0-0", 100)
        # Nothing undelivered was ever trimmed: the read continues where the last ended.
        assert entries[0].data == str(len(delivered))
        delivered += entries
        store.mark_delivered(keys, delivered[-1], ttl_s=60)
    assert [entry.data for entry in delivered] == [str(i) for i in range(50)]
    assert r.xlen(keys.history) == 20
    assert r.hget(keys.state, "trimmed") == delivered[29].id


def test_the_mark_only_moves_forward(store, r):
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, "a", "b")
    drain(store, keys, settings())
    first, second = store.read_after(keys, "0-0", 10)[0]
    assert store.mark_delivered(keys, second, ttl_s=60)
    assert not store.mark_delivered(keys, first, ttl_s=60)
    assert store.delivered_mark(keys) == second.id


def test_a_drain_publishes_one_wake_per_batch(store, r, wakes):
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, "a", "b", "c")
    drain(store, keys, settings())
    assert next_wake(wakes)[0] == history_entries(store, keys)[-1].id
    assert wakes.get_message(timeout=0.2) is None


def test_a_wake_carries_a_small_batch_for_the_other_workers(store, r, wakes):
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, "first")
    drain(store, keys, settings())
    first_newest, first_carried = next_wake(wakes)
    first_previous, first_entries = carried_entries(first_carried)
    assert first_previous == ""
    tricky = ['{"quote": "\\"", "slash": "/"}', "é 漢字 🙂", "", "line\nbreak\ttab"]
    r.lpush(keys.mailbox, *tricky)
    drain(store, keys, settings())
    second_newest, second_carried = next_wake(wakes)
    second_previous, second_entries = carried_entries(second_carried)
    everything = history_entries(store, keys)
    assert first_entries == everything[:1]
    assert first_newest == everything[0].id
    assert second_previous == everything[0].id
    assert second_entries == everything[1:]
    assert second_newest == everything[-1].id
    assert [entry.data for entry in second_entries] == tricky


def test_a_big_batch_wake_says_only_look(store, r, wakes):
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, *["x" * 1000] * (WAKE_CARRY_BYTES // 1000 + 1))
    drain(store, keys, settings())
    newest, carried = next_wake(wakes)
    assert carried == b""
    assert newest == history_entries(store, keys)[-1].id


def test_poison_messages_go_to_the_dead_letter_list_and_the_rest_flows(store, r, redis_server):
    keys = user_keys("1", MAILBOX)
    config = settings(PUSH_MAX_MESSAGE_BYTES="64")
    r.lpush(keys.mailbox, b"ok 1", b"x" * 65, b"\xff\xfe not utf-8", b"\xed\xa0\x80", b"ok 2")
    r.lpush(keys.mailbox, "ünïcode ✓ 🎉".encode(), b"x" * 64)
    result = drain(store, keys, config)
    assert result.moved == 4
    assert sorted(result.dead_reasons) == ["not UTF-8", "not UTF-8", "too large"]
    assert history(store, keys) == ["ok 1", "ok 2", "ünïcode ✓ 🎉", "x" * 64]
    raw = redis.Redis.from_url(redis_server.url)
    assert set(raw.lrange(keys.dead, 0, -1)) == {b"x" * 65, b"\xff\xfe not utf-8", b"\xed\xa0\x80"}
    raw.close()


def test_a_mover_wait_drains_in_the_same_round_trip(store, r):
    """BLMOVE and the drain go together on the mover's connection: what arrives is in
    the history when the wait returns, also when Redis has lost its scripts."""
    keys = user_keys("1", MAILBOX)
    limits = drain_limits(settings())
    connection = store.mover_connection(keys.mailbox)
    try:
        r.lpush(keys.mailbox, "a", "b")
        moved = store.wait_and_drain(connection, keys, limits)
        assert [entry.data for entry in moved.entries] == ["a", "b"]
        assert history(store, keys) == ["a", "b"]
        r.script_flush()
        r.lpush(keys.mailbox, "c")
        moved = store.wait_and_drain(connection, keys, limits)
        assert [entry.data for entry in moved.entries] == ["c"]
        # Nothing arrives: the block (1 s here) ends and the drain finds nothing.
        assert store.wait_and_drain(connection, keys, limits).moved == 0
        assert history(store, keys) == ["a", "b", "c"]
        assert r.llen(keys.pending) == 0
    finally:
        connection.disconnect()


def test_only_the_lease_holder_drains(store, r):
    """One drainer per user across the fleet: a claim takes a free lease and drains; a
    claim on a lease another drainer holds moves nothing and names the holder."""
    keys = user_keys("1", MAILBOX)
    limits = drain_limits(settings())
    r.lpush(keys.mailbox, "a")
    ours = store.drain(keys, limits, LeaseClaim("host:1:aa#watch"))
    assert (ours.moved, ours.holder) == (1, None)
    assert r.get(keys.mover) == "host:1:aa#watch"
    assert 0 < r.pttl(keys.mover) <= MOVER_LEASE_SAFETY_MS
    r.lpush(keys.mailbox, "b")
    theirs = store.drain(keys, limits, LeaseClaim("host:2:bb#watch"))
    assert (theirs.moved, theirs.holder, theirs.entries) == (0, "host:1:aa#watch", [])
    assert r.llen(keys.mailbox) == 1  # left for the holder
    assert store.drain(keys, limits, LeaseClaim("host:1:aa#watch")).moved == 1
    assert history(store, keys) == ["a", "b"]


def test_a_claim_steals_only_from_the_holder_it_names_dead(store, r):
    keys = user_keys("1", MAILBOX)
    limits = drain_limits(settings())
    r.set(keys.mover, "host:1:aa#watch")
    r.lpush(keys.mailbox, "a")
    wrong = store.drain(keys, limits, LeaseClaim("host:2:bb#watch", "steal", "host:3:cc#7"))
    assert (wrong.moved, wrong.holder) == (0, "host:1:aa#watch")
    stolen = store.drain(keys, limits, LeaseClaim("host:2:bb#watch", "steal", "host:1:aa#watch"))
    assert (stolen.moved, stolen.holder) == (1, None)
    assert r.get(keys.mover) == "host:2:bb#watch"


def test_no_wake_when_no_other_worker_serves_the_user(store, r, wakes):
    """With the caller's presence prefix, the wake goes out only when a connection of the
    user lives on another worker (a worker's own wakes cost it a pub/sub read each)."""
    keys = user_keys("1", MAILBOX)
    limits = drain_limits(settings())
    r.zadd(keys.presence, {"host:1:1": 1e15, "host:1:2": 1e15})
    r.lpush(keys.mailbox, "only ours")
    assert store.drain(keys, limits, worker_prefix="host:1:").moved == 1
    assert wakes.get_message(timeout=0.2) is None
    r.zadd(keys.presence, {"host:2:1": 1e15})
    r.lpush(keys.mailbox, "theirs too")
    assert store.drain(keys, limits, worker_prefix="host:1:").moved == 1
    newest, _ = next_wake(wakes)
    assert newest == history_entries(store, keys)[-1].id
