"""The mover lease's rules, as plain code: who may drain a user's mailbox, and when a
holder that stopped answering may be replaced.

Theory of operation: one drainer per user across the fleet. The right to drain is a
lease in Redis (`{mailbox}:mover`, holding the drainer's id `<worker id>#<n>`). A worker
with connections of the user but without the lease waits: for the holder's "free"
wake when it gives the lease back, and otherwise asks again now and then. A holder's
worker renews its liveness key (`push:alive:<worker id>`) every few seconds; a waiter
takes the lease over only once that worker has been seen dead twice, a while apart,
because a missing key alone may be a Redis that lost its data, which the holder's
worker writes again within seconds.

What a blocking mover does with the lease script's answer to "acquire" (`acquire_verdict`):
the lease is its own now: move (MOVE); nobody's, or not told: wait (WAIT); held by a drainer
of its own worker: wait if that drainer runs, else it was left behind (Redis was away, or
the watcher held it before Redis refused to track keys) and is taken back (TAKE_BACK); held
by a holder seen for the first time: wait, and start watching that holder's worker afresh
(WATCH); held by one seen before: read its worker's liveness and take the lease over once
its death is confirmed (ASK_ALIVE).

Nothing here does I/O: the blocking mover (push/delivery/mover.py) and the per-worker
watcher (push/delivery/watcher.py) ask these rules and do the Redis calls themselves.
"""

from __future__ import annotations

import random
from collections.abc import Collection

#: A waiter asks for the lease this often, in case the holder's "free" wake was missed.
LEASE_RECHECK_S = 30.0
#: ... and once this soon after it first sees a holder: that holder's "free" may have been
#: published before the waiter's worker subscribed to the user's wake channel.
NEW_HOLDER_RECHECK_S = 1.0
#: A holder's worker must be seen dead this long apart before its lease is taken (its
#: worker renews the liveness key every 2 s).
DEAD_CONFIRM_S = 2.5

MOVE = "move"
WAIT = "wait"
TAKE_BACK = "take back"
WATCH = "watch"
ASK_ALIVE = "ask alive"


def holder_worker(holder: str) -> str:
    """The worker id of a lease holder's id (`<worker id>#<n>`)."""
    return holder.rsplit("#", 1)[0]


def next_ask_s(new_holder: bool, rng: random.Random | None = None) -> float:
    """Seconds a waiter waits before asking for the lease again: soon after it first sees
    a holder, else about LEASE_RECHECK_S, jittered so waiters do not ask together."""
    if new_holder:
        return NEW_HOLDER_RECHECK_S
    return LEASE_RECHECK_S * (rng or random).uniform(0.8, 1.2)


def acquire_verdict(answer: object, worker_id: str, new_holder: bool, running: bool) -> str:
    """What a mover of `worker_id` does with the answer to "acquire": True (the lease is
    its own), a holder's id, or anything else (nobody's). `new_holder`: the holder was not
    the one seen at the last ask; `running`: the holder is a drainer of this process that
    still runs."""
    if answer is True:
        return MOVE
    if not isinstance(answer, str):
        return WAIT
    if holder_worker(answer) == worker_id:
        return WAIT if running else TAKE_BACK
    if new_holder:
        return WATCH
    return ASK_ALIVE


class DeathWatch:
    """Which holders' workers are confirmed dead: seen without a liveness key twice, at
    least DEAD_CONFIRM_S apart, and not seen alive in between."""

    def __init__(self, confirm_s: float = DEAD_CONFIRM_S) -> None:
        self.confirm_s = confirm_s
        #: worker id -> when it was first seen dead (since it was last seen alive)
        self._first_seen_dead: dict[str, float] = {}

    def seen(self, worker: str, alive: bool, now: float) -> bool:
        """Record a liveness reading of `worker`; True once its death is confirmed."""
        if alive:
            self._first_seen_dead.pop(worker, None)
            return False
        first = self._first_seen_dead.setdefault(worker, now)
        return now - first >= self.confirm_s

    def forget(self, worker: str) -> None:
        """Stop tracking `worker` (nobody waits on it any more)."""
        self._first_seen_dead.pop(worker, None)

    def keep_only(self, workers: Collection[str]) -> None:
        """Stop tracking every worker not in `workers` (nobody waits on it any more)."""
        for worker in set(self._first_seen_dead) - set(workers):
            del self._first_seen_dead[worker]

    def watched(self) -> set[str]:
        return set(self._first_seen_dead)
