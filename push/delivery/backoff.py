"""Backoff between attempts while Redis is unreachable: doubles up to a cap, with jitter,
so that a worker's greenlets do not all come back to Redis in the same instant."""

from __future__ import annotations

import random

import gevent

RETRY_FIRST_S = 0.1
RETRY_CAP_S = 5.0


class Backoff:
    """The delay before the next attempt; `reset()` after one that went through."""

    __slots__ = ("delay",)

    def __init__(self) -> None:
        self.delay = RETRY_FIRST_S

    def reset(self) -> None:
        self.delay = RETRY_FIRST_S

    def next_s(self) -> float:
        """Seconds to wait now (jittered); the next wait is twice as long, up to the cap."""
        wait = self.delay * random.uniform(0.5, 1.5)
        self.delay = min(self.delay * 2, RETRY_CAP_S)
        return wait

    def sleep(self) -> None:
        gevent.sleep(self.next_s())
