"""The delivered marks and acks of one worker's users, written together.

A user's delivered mark is the newest entry written to any of its connections: a
tab that opens without a cursor starts after it, and the mover keeps the history at
most a window ahead of it. Writing it once per user per message costs a round trip
each; instead every writer notes its newest entry here and one greenlet writes the
marks of all users with something new in one pipeline, at most every
MARK_INTERVAL_S (which mark is kept, and how often: push/rules/marks.py). A tab that
opens in between without a cursor may see an entry twice (at least once, de-duplicated
by id), never miss one.

Acks from WebSocket clients go the same way: the newest per user waits for the next
flush, after the marks, so a burst of acks costs one script call per user per flush.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent

from push.delivery.retry import Retry
from push.model.entries import Entry
from push.model.keys import UserKeys, event_id_text
from push.rules.marks import MARK_CHUNK, flush_wait_s, newer
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.store import Store

log = logging.getLogger(__name__)


class DeliveredMarks:
    """Newest written entry and newest ack per user, flushed to Redis in batches."""

    def __init__(self, store: Store, ttl_s: int) -> None:
        self.store = store
        self.ttl_s = ttl_s
        #: user -> (newest entry written, what to call once it is marked)
        self._pending: dict[UserKeys, tuple[Entry, Callable[[], None]]] = {}
        #: user -> newest id a client showed, as a key and as text
        self._acks: dict[UserKeys, tuple[tuple[int, int], str]] = {}
        self._flushing = False
        self._last_flush = 0.0

    def note(self, keys: UserKeys, entry: Entry, on_marked: Callable[[], None]) -> None:
        """`entry` of `keys` is on a socket: mark it delivered soon, then call `on_marked`."""
        self._keep_newest(keys, entry, on_marked)
        self._start_flushing()

    def acknowledge(self, keys: UserKeys, key: tuple[int, int]) -> None:
        """A client of `keys` showed the entry `key`: record the newest such soon."""
        self._keep_newest_ack(keys, key, event_id_text(key))
        self._start_flushing()

    def _start_flushing(self) -> None:
        if not self._flushing:
            self._flushing = True
            gevent.spawn(self._flush_while_pending)

    def _flush_while_pending(self) -> None:
        retry = Retry("mark", log)  # while Redis is away the marks wait (the newest per user)
        try:
            while self._pending or self._acks:
                wait = flush_wait_s(self._last_flush, time.monotonic())
                if wait > 0:
                    gevent.sleep(wait)
                self._last_flush = time.monotonic()
                try:
                    self._flush()
                    retry.went_through()
                except REDIS_UNAVAILABLE as error:
                    retry.failed(error, "marking delivered")
                    retry.wait()
        finally:
            self._flushing = False

    def _flush(self) -> None:
        taken, self._pending = self._pending, {}
        acks_taken, self._acks = self._acks, {}
        items = list(taken.items())
        acks = list(acks_taken.items())
        for start in range(0, max(len(items), len(acks)), MARK_CHUNK):
            chunk = items[start : start + MARK_CHUNK]
            ack_chunk = acks[start : start + MARK_CHUNK]
            try:
                self.store.mark_delivered_many(
                    [(keys, entry) for keys, (entry, _) in chunk],
                    self.ttl_s,
                    [(keys, event_id) for keys, (_, event_id) in ack_chunk],
                )
            except BaseException:
                self._put_back(items[start:])
                for keys, (key, event_id) in acks[start:]:
                    self._keep_newest_ack(keys, key, event_id)
                raise
            for _, (_, on_marked) in chunk:
                on_marked()

    def _put_back(self, items: list[tuple[UserKeys, tuple[Entry, Callable[[], None]]]]) -> None:
        """Marks that did not go wait for the next flush, unless a newer one came meanwhile."""
        for keys, (entry, on_marked) in items:
            self._keep_newest(keys, entry, on_marked)

    def _keep_newest(self, keys: UserKeys, entry: Entry, on_marked: Callable[[], None]) -> None:
        current = self._pending.get(keys)
        if newer(entry.key, None if current is None else current[0].key):
            self._pending[keys] = (entry, on_marked)

    def _keep_newest_ack(self, keys: UserKeys, key: tuple[int, int], event_id: str) -> None:
        current = self._acks.get(keys)
        if newer(key, None if current is None else current[0]):
            self._acks[keys] = (key, event_id)
