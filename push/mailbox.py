"""The mover: takes one user's messages from the mailbox into the history.

Theory of operation: the mover blocks on `BLMOVE mailbox pending RIGHT LEFT`,
the reliable form of BRPOP: a message that left the mailbox sits in `pending`
until the drain script has put it into the history, so a worker killed
between the two loses nothing (the next drain, by any worker, takes it). The
drain moves a whole batch per call. When the history is a full window ahead
of what the user's connections were written, the mover waits for them to
catch up instead of moving more: the backlog stays in the mailbox, durable.

A mover runs while its user has a connection in this worker and is killed
when the last one goes; redis-py drops a connection interrupted mid-command,
and the mover's own client is closed on the way out.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import gevent
import redis
from gevent.event import Event

from push.config import DeliverySettings
from push.keys import UserKeys
from push.metrics import DEAD_LETTERS, MOVED, REDIS_ERRORS
from push.store import DrainResult, Store

log = logging.getLogger(__name__)

#: Backoff between attempts while Redis is unreachable: doubles up to the cap, with jitter.
RETRY_FIRST_S = 0.1
RETRY_CAP_S = 5.0
#: While the window is full the mover re-checks this often even without a local signal
#: (a connection on another worker may have advanced the delivered mark).
WINDOW_RECHECK_S = 1.0


def drain(store: Store, keys: UserKeys, settings: DeliverySettings) -> DrainResult:
    """One drain of `keys` with the service's settings; logs dead letters."""
    result = store.drain(
        keys,
        window=settings.window,
        batch=settings.drain_batch,
        history_max=settings.history_max,
        ttl_s=settings.history_ttl_s,
        max_message_bytes=settings.max_message_bytes,
    )
    if result.moved:
        MOVED.inc(result.moved)
    if result.dead:
        DEAD_LETTERS.inc(result.dead)
    for reason in result.dead_reasons:
        log.warning("dead letter mailbox=%s reason=%s moved to %s", keys.mailbox, reason, keys.dead)
    return result


class Mover:
    """Moves one user's mail into its history for as long as it runs."""

    def __init__(
        self,
        store: Store,
        keys: UserKeys,
        settings: DeliverySettings,
        on_moved: Callable[[], None],
    ) -> None:
        self.store = store
        self.keys = keys
        self.settings = settings
        self.on_moved = on_moved
        self.room_freed = Event()

    def run(self) -> None:
        client = self.store.blocking_client(self.keys.mailbox)
        delay = RETRY_FIRST_S
        try:
            while True:
                try:
                    self._step(client)
                    delay = RETRY_FIRST_S
                except Exception as error:
                    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
                        REDIS_ERRORS.labels("mover").inc()
                        log.warning("redis error mailbox=%s error=%s", self.keys.mailbox, error)
                    else:
                        log.exception("mover failed mailbox=%s", self.keys.mailbox)
                    gevent.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, RETRY_CAP_S)
        finally:
            self.store.close_blocking_client(client)

    def _step(self, client: redis.Redis) -> None:
        result = drain(self.store, self.keys, self.settings)
        if result.moved:
            self.on_moved()
        if result.more and result.room > 0:
            return
        if result.more:
            self.room_freed.wait(WINDOW_RECHECK_S)
            self.room_freed.clear()
            return
        self.store.wait_for_mail(client, self.keys)
