"""One way for a worker's loop to meet Redis being away: count it, log it, back off.

Every loop of the worker that talks to Redis (the pump, the wake listener, the blocking
mover, the mailbox watcher's nodes, the marks' flush, the liveness and presence chores, the
sweep) does the same when a call fails: it counts the error under its part
(`push_redis_errors_total{part}`), logs one warning line saying what it was doing, and
waits before the next attempt (backoff.py: doubling, jittered, capped), from the first
wait again after a call that went through. Where a loop hands any other error here too
(the pump, the mover, the watcher's turns, the sweep), it is a bug: logged with its
traceback, and that loop goes on the same way rather than die with the worker's delivery.
"""

from __future__ import annotations

import logging

from push.delivery.backoff import Backoff
from push.metrics import REDIS_ERRORS
from push.storage.clients import REDIS_UNAVAILABLE


class Retry:
    """The counter, log and backoff of one loop (`part`: its label in the metric)."""

    __slots__ = ("_backoff", "_log", "_part")

    def __init__(self, part: str, log: logging.Logger) -> None:
        # The metric's child is looked up on the first error only: a pump starts at every
        # wake of an idle user, and a series should appear when its part first failed.
        self._part = part
        self._log = log
        self._backoff = Backoff()

    def went_through(self) -> None:
        """An attempt succeeded: the next failure waits the shortest time again."""
        self._backoff.reset()

    def failed(self, error: BaseException, doing: str, *args: object) -> None:
        """Count and log `error`, met while `doing` (a log message; `args` fill it)."""
        if isinstance(error, REDIS_UNAVAILABLE):
            REDIS_ERRORS.labels(self._part).inc()
            self._log.warning("redis error " + doing + " error=%s", *args, error)
        else:
            self._log.error("failed " + doing, *args, exc_info=error)

    def wait(self) -> None:
        """Sleep before the next attempt (this greenlet only)."""
        self._backoff.sleep()

    def next_s(self) -> float:
        """The wait before the next attempt, for a loop that must not sleep through it."""
        return self._backoff.next_s()
