"""Process settings for a worker that holds thousands of connections on one core.

Measured with 5,000 streams a worker (bench/, `make bench`): about 120 objects a
stream are tracked by Python's cyclic garbage collector, and with the default
thresholds a full collection ran every few seconds and held the worker for
0.2-0.7 s each time, which was the whole of the light-load p99. Each greenlet also
kept the stack it was spawned from (about 20 objects), and each greenlet that logged
got a dummy Thread object.

gevent also hands every address lookup to its thread pool, even of an IP address
such as the default REDIS_URL's 127.0.0.1: about 4 % of a worker's CPU while
streams open (one Redis connection per user coming online). Such an address is
answered in place; names still go to gevent's resolver.
"""

from __future__ import annotations

import _socket
import functools
import gc
import ipaddress
import logging
from typing import Any

import gevent
from gevent import get_hub

#: Young collections every 50,000 net allocations, not 700: objects of a request or a
#: delivery die (by reference count) before a collection sees them, so far fewer reach
#: the old generation, and full collections become rare.
GC_THRESHOLDS = (50_000, 20, 10)


def is_ip_address(host: object) -> bool:
    """Whether `host` (as given to getaddrinfo) is an IPv4 or IPv6 address, not a name."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return isinstance(host, str) and _is_ip_address(host)


@functools.lru_cache(maxsize=64)
def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])  # fe80::1%eth0: a scoped IPv6
    except ValueError:
        return False
    return True


class AddressesInPlace:
    """gevent's resolver, except that an IP address is looked up in place: the system's
    getaddrinfo does no I/O for it (AI_NUMERICHOST), so it needs no thread."""

    def __init__(self, resolver: Any) -> None:
        self._resolver = resolver

    def getaddrinfo(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list:
        if is_ip_address(host):
            flags |= _socket.AI_NUMERICHOST
            return _socket.getaddrinfo(host, port, family, type, proto, flags)
        return self._resolver.getaddrinfo(host, port, family, type, proto, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resolver, name)


def tune_for_many_connections() -> None:
    """Call once in a serving process, after the app is loaded."""
    gevent.config.track_greenlet_tree = False
    logging.logThreads = False
    # What exists now (modules, the app) lives as long as the process: never scan it.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    hub = get_hub()
    if not isinstance(hub.resolver, AddressesInPlace):
        hub.resolver = AddressesInPlace(hub.resolver)
