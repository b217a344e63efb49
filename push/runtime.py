"""Process settings for a worker that holds thousands of connections on one core.

Measured with 5,000 streams a worker (bench/, `make bench`): about 120 objects a
stream are tracked by Python's cyclic garbage collector, and with the default
thresholds a full collection ran every few seconds and held the worker for
0.2-0.7 s each time, which was the whole of the light-load p99. Each greenlet also
kept the stack it was spawned from (about 20 objects), and each greenlet that logged
got a dummy Thread object.
"""

from __future__ import annotations

import gc
import logging

import gevent

#: Young collections every 50,000 net allocations, not 700: objects of a request or a
#: delivery die (by reference count) before a collection sees them, so far fewer reach
#: the old generation, and full collections become rare.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_for_many_connections() -> None:
    """Call once in a serving process, after the app is loaded."""
    gevent.config.track_greenlet_tree = False
    logging.logThreads = False
    # What exists now (modules, the app) lives as long as the process: never scan it.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
