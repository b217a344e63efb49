"""The mover lease's rules (push/rules/lease.py) as a table: no Redis, no gevent."""

from __future__ import annotations

import random

import pytest

from push.rules.lease import (
    ASK_ALIVE,
    DEAD_CONFIRM_S,
    LEASE_RECHECK_S,
    MOVE,
    NEW_HOLDER_RECHECK_S,
    TAKE_BACK,
    WAIT,
    WATCH,
    DeathWatch,
    acquire_verdict,
    holder_worker,
    next_ask_s,
)

#: (readings of one worker as (seconds, alive), whether each confirms its death)
DEATHS = [
    # Seen dead once: only suspected.
    ([(0.0, False)], [False]),
    # Dead twice, far enough apart: confirmed.
    ([(0.0, False), (DEAD_CONFIRM_S, False)], [False, True]),
    # Dead twice, too close together: not yet.
    ([(0.0, False), (DEAD_CONFIRM_S - 0.1, False)], [False, False]),
    # Alive in between: the count starts over (a Redis that lost the key, written again).
    ([(0.0, False), (2.0, True), (3.0, False), (4.0, False)], [False, False, False, False]),
    (
        [(0.0, False), (2.0, True), (3.0, False), (3.0 + DEAD_CONFIRM_S, False)],
        [False] * 3 + [True],
    ),
    # Alive all along.
    ([(0.0, True), (10.0, True)], [False, False]),
]


@pytest.mark.parametrize(("readings", "confirmed"), DEATHS)
def test_a_worker_is_confirmed_dead_only_when_seen_dead_twice_a_while_apart(readings, confirmed):
    deaths = DeathWatch()
    assert [deaths.seen("w", alive, at) for at, alive in readings] == confirmed


def test_workers_are_watched_apart_and_forgotten_on_request():
    deaths = DeathWatch()
    assert not deaths.seen("a", False, 0.0)
    assert not deaths.seen("b", False, 2.0)
    assert deaths.seen("a", False, 3.0)
    assert not deaths.seen("b", False, 3.0)
    assert deaths.watched() == {"a", "b"}
    deaths.forget("a")
    assert not deaths.seen("a", False, 10.0)  # starts over


@pytest.mark.parametrize(
    ("holder", "worker"),
    [("host:1:ab#watch", "host:1:ab"), ("host:1:ab#17", "host:1:ab"), ("h#x#3", "h#x")],
)
def test_the_worker_of_a_holder(holder, worker):
    assert holder_worker(holder) == worker


def test_a_waiter_asks_soon_after_a_new_holder_and_rarely_otherwise():
    rng = random.Random(1)
    assert next_ask_s(True, rng) == NEW_HOLDER_RECHECK_S
    waits = [next_ask_s(False, rng) for _ in range(200)]
    assert all(0.8 * LEASE_RECHECK_S <= wait <= 1.2 * LEASE_RECHECK_S for wait in waits)
    assert len(set(waits)) > 100  # jittered: waiters do not ask together


def test_only_the_workers_still_waited_on_stay_watched():
    deaths = DeathWatch()
    for worker in ("a", "b", "c"):
        deaths.seen(worker, False, 0.0)
    deaths.keep_only({"b", "z"})
    assert deaths.watched() == {"b"}
    assert deaths.seen("b", False, DEAD_CONFIRM_S)  # b's count went on
    assert not deaths.seen("a", False, DEAD_CONFIRM_S)  # a's started over


#: (the lease script's answer to "acquire", whether the holder is new, whether it is a
#: running drainer of this process, what a mover of worker "w1" does)
ANSWERS = [
    (True, False, False, MOVE),
    (None, False, False, WAIT),  # not told: ask again later
    (False, False, False, WAIT),
    ("w1#3", True, True, WAIT),  # another drainer of ours runs: it drains
    ("w1#3", False, False, TAKE_BACK),  # ours, left behind: taken back
    ("w1#watch", True, False, TAKE_BACK),
    ("w2#3", True, False, WATCH),  # someone else's, new: watch its worker afresh
    ("w2#3", False, False, ASK_ALIVE),  # seen before: is its worker alive?
    ("w1:x#3", False, False, ASK_ALIVE),  # another worker whose id starts like ours
]


@pytest.mark.parametrize(("answer", "new_holder", "running", "verdict"), ANSWERS)
def test_what_a_mover_does_with_the_answer_to_acquire(answer, new_holder, running, verdict):
    assert acquire_verdict(answer, "w1", new_holder, running) == verdict
