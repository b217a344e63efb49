"""The worker's standing chores for its users: saying it is alive (and noticing the
workers that stopped saying so), and keeping its tabs' presence leases.

Both are greenlets started with the switchboard, one per worker, looping forever.
"""

from __future__ import annotations

import logging
import time

import gevent

from push.delivery.local_user import LocalUser
from push.delivery.mover import release_leftovers
from push.delivery.retry import Retry
from push.rules.lease import DeathWatch
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.presence import Presence
from push.storage.store import Store

log = logging.getLogger(__name__)

#: A worker renews its liveness key this often; other workers take its mover leases
#: over once the key has expired.
WORKER_ALIVE_EVERY_S = 2.0
WORKER_ALIVE_TTL_S = 6.0
#: Users whose presence leases are renewed per round trip.
RENEW_CHUNK = 100


def keep_alive(store: Store, worker_id: str, users: dict[str, LocalUser]) -> None:
    """Tell other workers this one runs, so they leave its mover leases alone; wake the
    drainers of `users` waiting on a worker that stopped saying so."""
    deaths = DeathWatch()
    retry = Retry("liveness", log)
    while True:
        try:
            store.mark_worker_alive(worker_id, WORKER_ALIVE_TTL_S)
            release_leftovers(store)
            _wake_drainers_of_dead_workers(store, users, deaths)
        except REDIS_UNAVAILABLE as error:
            retry.failed(error, "marking the worker alive")
        gevent.sleep(WORKER_ALIVE_EVERY_S)  # no backoff: its liveness key must not lapse


def _wake_drainers_of_dead_workers(
    store: Store, users: dict[str, LocalUser], deaths: DeathWatch
) -> None:
    """One liveness read per other worker holding leases our drainers wait for; a worker
    seen dead twice, a while apart, is confirmed dead (push/rules/lease.py)."""
    waiting: dict[str, list[LocalUser]] = {}
    for user in list(users.values()):
        worker = user.lease_holder_worker
        if worker is not None:
            waiting.setdefault(worker, []).append(user)
    deaths.keep_only(waiting)
    for worker, waiters in waiting.items():
        alive = store.worker_alive(worker)
        confirmed = deaths.seen(worker, alive, time.monotonic())
        if not alive:
            for user in waiters:
                user.holder_not_alive(confirmed)


def renew_presence(presence: Presence, users: dict[str, LocalUser]) -> None:
    """Keep the presence leases of this worker's tabs alive, RENEW_CHUNK users a round trip
    with a yield between: one worker's thousands of users must not hold its loop, or Redis,
    for tens of milliseconds. Each chunk is read just before it goes, so a tab that left
    meanwhile is not renewed."""
    retry = Retry("presence", log)
    while True:
        gevent.sleep(presence.renew_every_s)
        local = list(users.values())
        for start in range(0, len(local), RENEW_CHUNK):
            leases = {
                user.keys: [tab.id for tab in user.tabs]
                for user in local[start : start + RENEW_CHUNK]
                if user.tabs
            }
            try:
                presence.renew(leases)
            except REDIS_UNAVAILABLE as error:
                retry.failed(error, "renewing presence")
                break  # the next round, at the usual time
            gevent.sleep(0)
