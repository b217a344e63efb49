"""The blocking mover (PUSH_MAILBOX_WATCH=block, or where Redis cannot track keys): takes
one user's messages from the mailbox into the history over a connection of its own.

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

import itertools
import logging
import time
from collections.abc import Callable

from gevent.event import Event
from redis.connection import AbstractConnection

from push.delivery.retry import Retry
from push.delivery.tally import TALLY
from push.metrics import DEAD_LETTERS, MOVED
from push.model.entries import DrainLimits, DrainResult
from push.model.keys import UserKeys
from push.model.settings import (
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTER_MAX_COUNT,
    DeliverySettings,
    mailbox_expiry_ms,
)
from push.rules import lease
from push.rules.lease import (
    LEASE_RECHECK_S,
    DeathWatch,
    acquire_verdict,
    holder_worker,
    next_ask_s,
)
from push.rules.window import AGAIN, WAIT_FOR_ROOM, WINDOW_RECHECK_S, after_drain, sparse
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.drops import MAILBOX_FULL, messages_expired
from push.storage.presence import worker_prefix
from push.storage.store import Store

log = logging.getLogger(__name__)

#: The holder confirms the lease is still its own at least this often.
OWNERSHIP_CHECK_S = 10.0

_mover_numbers = itertools.count(1)
#: The ids of this process's running movers, and the leases of stopped ones that could
#: not be given back yet.
_running: set[str] = set()
_unreleased: list[tuple[UserKeys, str]] = []


def release_lease(store: Store, keys: UserKeys, mover_id: str) -> None:
    """Give the lease back if it is ours; the script says "free" on the wake channel."""
    store.mover_lease(keys, mover_id, "release")


def release_leftovers(store: Store) -> None:
    """Give back the leases stopped movers kept while Redis was away."""
    while _unreleased:
        keys, mover_id = _unreleased[0]
        release_lease(store, keys, mover_id)
        _unreleased.pop(0)


def drain_limits(settings: DeliverySettings) -> DrainLimits:
    """The drain script's limits, from the service's settings."""
    return DrainLimits(
        window=settings.window,
        batch=settings.drain_batch,
        history_max=settings.history_max,
        ttl_s=settings.history_ttl_s,
        max_message_bytes=settings.max_message_bytes,
        mailbox_max=settings.mailbox_max,
        mailbox_expiry_ms=mailbox_expiry_ms(settings.mailbox_ttl_s),
        dead_letter_bytes=DEAD_LETTER_MAX_BYTES,
        dead_letter_ttl_s=settings.dead_letter_ttl_s,
        dead_letter_count=DEAD_LETTER_MAX_COUNT,
    )


def drain(store: Store, keys: UserKeys, settings: DeliverySettings) -> DrainResult:
    """One drain of `keys` with the service's settings; logs dead letters."""
    return counted(store.drain(keys, drain_limits(settings)), keys)


def counted(result: DrainResult, keys: UserKeys) -> DrainResult:
    """Count what a drain moved, dead-lettered and dropped over the mailbox's cap, and log
    why each dead one died."""
    if result.capped:
        messages_expired(MAILBOX_FULL, keys.mailbox, result.capped)
    if result.moved:
        TALLY.count(MOVED, result.moved)
    if result.dead:
        DEAD_LETTERS.inc(result.dead)
    for reason in result.dead_reasons:
        log.warning("dead letter mailbox=%s reason=%s moved to %s", keys.mailbox, reason, keys.dead)
    return result


class Mover:
    """Moves one user's mail into its history, while it holds the user's mover lease.

    Every worker with a connection of the user runs a Mover, but only the holder of
    the lease blocks on BLMOVE: Redis holds about one blocked connection per online
    user, however many workers and hosts the user's tabs are spread over. The others
    wait, costing Redis nothing: for the holder's "free" wake when it stops, or for
    their switchboard to find the holder's worker dead (its liveness key expired), and then
    take the lease over (the rules: lease.py)."""

    def __init__(
        self,
        store: Store,
        keys: UserKeys,
        settings: DeliverySettings,
        on_moved: Callable[[DrainResult], None],
        worker_id: str,
    ) -> None:
        self.store = store
        self.keys = keys
        self.limits = drain_limits(settings)
        self.on_moved = on_moved
        self.worker_id = worker_id
        self.id = f"{worker_id}#{next(_mover_numbers)}"
        self.room_freed = Event()
        self.lease_free = Event()
        self._deaths = DeathWatch()
        self.prefix = worker_prefix()
        #: Whether mail is sparse: the next wait drains in its own round trip (_next_drain).
        self._mail_sparse = True
        #: The lease's holder when we last asked (None: us, nobody, or not asked yet).
        self.holder: str | None = None
        #: How long to wait for a wake before asking for the lease again.
        self._ask_again_s = LEASE_RECHECK_S

    def run(self) -> None:
        retry = Retry("mover", log)
        _running.add(self.id)
        try:
            while True:
                try:
                    if self._acquire():
                        self._move()
                        continue  # the lease is someone else's, or nobody's: ask at once
                    self.lease_free.wait(self._ask_again_s)
                    self.lease_free.clear()
                    retry.went_through()
                except Exception as error:
                    retry.failed(error, "moving mail mailbox=%s", self.keys.mailbox)
                    retry.wait()
        finally:
            self._release()
            _running.discard(self.id)

    @property
    def holder_worker(self) -> str | None:
        """The other worker whose mover held the lease when this one last asked."""
        if self.holder is None:
            return None
        worker = holder_worker(self.holder)
        return None if worker == self.worker_id else worker

    def _acquire(self) -> bool:
        seen_before = self.holder
        answer = self.store.mover_lease(self.keys, self.id, "acquire")
        self.holder = answer if isinstance(answer, str) else None
        new_holder = self.holder is not None and answer != seen_before
        self._ask_again_s = next_ask_s(new_holder)
        worker = holder_worker(answer) if isinstance(answer, str) else ""
        verdict = acquire_verdict(answer, self.worker_id, new_holder, answer in _running)
        if verdict == lease.MOVE:
            return True
        if verdict == lease.TAKE_BACK:
            # A drainer of this worker stopped without giving the lease back (Redis was
            # away), or this worker's watcher held it before Redis refused to track keys.
            return self.store.mover_lease(self.keys, self.id, "steal", answer) is True
        if verdict == lease.WATCH:
            # A holder seen for the first time: the switchboard watches its worker and wakes
            # us if that worker stops renewing its liveness key.
            self._deaths.forget(worker)
            return False
        if verdict == lease.WAIT:
            return False
        alive = self.store.worker_alive(worker)
        if not self._deaths.seen(worker, alive, time.monotonic()):
            return False
        self._deaths.forget(worker)
        log.info("mover lease taken over mailbox=%s from=%s", self.keys.mailbox, answer)
        return self.store.mover_lease(self.keys, self.id, "steal", answer) is True

    def _move(self) -> None:
        """Move mail until the lease turns out to be someone else's."""
        connection = self.store.mover_connection(self.keys.mailbox)
        try:
            checked = time.monotonic()
            result = self._drain()
            while True:
                if time.monotonic() - checked > OWNERSHIP_CHECK_S:
                    if self.store.mover_lease(self.keys, self.id, "check") is not True:
                        return
                    checked = time.monotonic()
                if result.moved:
                    self.on_moved(result)
                more, room = result.more, result.room
                del result  # handed on: its entries must not wait here through a long BLMOVE
                result = self._next_drain(connection, more, room)
        finally:
            connection.disconnect()

    def _release(self) -> None:
        """Give the lease back (if it is ours) and tell the other workers' movers, at once.

        While Redis is away this cannot be done: release_leftovers tries again later."""
        try:
            release_lease(self.store, self.keys, self.id)
        except REDIS_UNAVAILABLE:
            _unreleased.append((self.keys, self.id))

    def _drain(self) -> DrainResult:
        return counted(
            self.store.drain(self.keys, self.limits, worker_prefix=self.prefix), self.keys
        )

    def _next_drain(self, connection: AbstractConnection, more: bool, room: int) -> DrainResult:
        """Drain again: at once while more waits (`more`) and the window has `room`, once
        it has room, or when mail arrives (blocked in Redis).

        Sparse mail (push/rules/window.py) is drained in the same round trip as the BLMOVE
        that waited for it: the lowest latency. Dense mail is drained a round trip later,
        which lets a bigger batch gather (fewer drains, wakes and writes per message)."""
        verdict = after_drain(more, room)
        if verdict == AGAIN:
            return self._drain()
        if verdict == WAIT_FOR_ROOM:
            self.room_freed.wait(WINDOW_RECHECK_S)
            self.room_freed.clear()
            return self._drain()
        started = time.monotonic()
        if self._mail_sparse:
            result = counted(
                self.store.wait_and_drain(connection, self.keys, self.limits, self.prefix),
                self.keys,
            )
        else:
            self.store.wait_for_mail(connection, self.keys)
            result = self._drain()
        self._mail_sparse = sparse(result.moved, time.monotonic() - started)
        return result
