"""The delivery path's metrics, kept in the process and added to the shared ones in bulk.

Under gunicorn the metrics are prometheus-client's multiprocess files: every `inc` and
`observe` writes a memory-mapped file under a lock, and a histogram's `observe` writes
two. Three or four of those per message cost a worker about 7 % of its CPU at tens of
thousands of messages a second, and sat between a message's drain and its socket write.
Here a count is a dict update; the sums go to the shared metrics at most FLUSH_S later
(a histogram's observations as one increment per bucket), from a greenlet of their own.
Outside gevent (the CLI) every count goes through at once.
"""

from __future__ import annotations

import atexit
from bisect import bisect_left
from typing import Any

import gevent
from gevent import monkey

from push.metrics import DELIVERY_SECONDS

#: Seconds a count may wait before the shared metrics show it.
FLUSH_S = 1.0


class Tally:
    """Counter increments and delivery delays waiting to be added to the metrics."""

    def __init__(self) -> None:
        self._counts: dict[Any, float] = {}
        #: The histogram's bucket bounds (+Inf last), and how many delays fell in each.
        self._bounds: list[float] = list(DELIVERY_SECONDS._upper_bounds)
        self._buckets = [0] * len(self._bounds)
        self._delay_sum = 0.0
        self._delays = 0
        self._flushing: gevent.Greenlet | None = None
        self._deferred = monkey.is_module_patched("socket")

    def count(self, counter: Any, amount: float = 1) -> None:
        """`counter.inc(amount)`, soon (`counter`: a metric, or a child of a labelled one)."""
        self._counts[counter] = self._counts.get(counter, 0) + amount
        self._soon()

    def delay(self, seconds: float) -> None:
        """`DELIVERY_SECONDS.observe(seconds)`, soon."""
        self._buckets[bisect_left(self._bounds, seconds)] += 1
        self._delay_sum += seconds
        self._delays += 1
        self._soon()

    def flush(self) -> None:
        """Add everything waiting to the metrics."""
        self._flushing = None
        counts, self._counts = self._counts, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        if self._delays:
            buckets, self._buckets = self._buckets, [0] * len(self._bounds)
            total, self._delay_sum, self._delays = self._delay_sum, 0.0, 0
            DELIVERY_SECONDS._sum.inc(total)
            for bucket, hits in zip(DELIVERY_SECONDS._buckets, buckets, strict=True):
                if hits:
                    bucket.inc(hits)

    def _soon(self) -> None:
        if not self._deferred:
            self.flush()
        elif self._flushing is None:
            self._flushing = gevent.spawn_later(FLUSH_S, self.flush)


#: The process's tally.
TALLY = Tally()
atexit.register(TALLY.flush)
