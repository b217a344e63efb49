"""One user's local tabs: the user's drainer, and the pump that reads the history for them.

Theory of operation: for each user with a tab in this worker there is a `LocalUser` with
the user's drainer (mailbox -> history, see drainers.py: an entry in the worker's mailbox
watcher, or a blocking mover where Redis cannot track keys) and the pump, a greenlet that
runs only while a read is asked for. The pump reads the history once for all of the user's
local tabs, from the oldest cursor among them, and offers the entries to each; every tab
keeps what is after its own cursor (the rules: push/rules/cursors.py, offers.py). The pump
runs when woken: by the local drainer, by a wake published by any worker's drainer (the
worker's wake listener, wake_listener.py), or every few heartbeats (a timer on the event
loop), so a missed wake heals by itself.

Writers (the SSE and WebSocket views) report what they have written; the LocalUser has
the user's delivered mark advanced in Redis (marks.py) and lets the drainer move more when
the window had filled.
"""

from __future__ import annotations

import logging
import time

import gevent
from gevent import get_hub

from push.delivery.drainers import BlockingDrainer, Drainer, WatchedDrainer
from push.delivery.marks import DeliveredMarks
from push.delivery.retry import Retry
from push.delivery.tab import OUTBOX_FULL, REVOKED, Tab
from push.delivery.watcher import MailboxWatcher
from push.model.entries import DrainResult, Entry, carried_entries, split_wake
from push.model.keys import InvalidEventId, UserKeys, event_id_text, parse_event_id
from push.model.settings import DeliverySettings
from push.rules.cursors import (
    nothing_after,
    read_again,
    read_due,
    read_start,
    readers,
    wake_is_old,
)
from push.rules.offers import stalled
from push.storage.store import Store

log = logging.getLogger(__name__)


def _nothing() -> None:
    """A stopped user's drainer is told nothing."""


class LocalUser:
    """The local tabs of one user, with that user's drainer and pump."""

    # One per online user: slots instead of a dict per instance.
    __slots__ = (
        "_drainer",
        "_heartbeats",
        "_pumping",
        "_quiet_heartbeats",
        "_room_freed",
        "_stopped",
        "_woken",
        "keys",
        "marks",
        "settings",
        "store",
        "tabs",
        "worker_id",
    )

    def __init__(
        self,
        keys: UserKeys,
        store: Store,
        settings: DeliverySettings,
        worker_id: str,
        marks: DeliveredMarks,
        watcher: MailboxWatcher | None,
    ) -> None:
        self.keys = keys
        self.store = store
        self.marks = marks
        self.settings = settings
        self.worker_id = worker_id
        self.tabs: set[Tab] = set()
        self._drainer: Drainer | None = None
        self.use_drainer(watcher)
        #: A read of the history is asked for; the pump's greenlet runs only while one is.
        self._woken = False
        self._pumping: gevent.Greenlet | None = None
        self._stopped = False
        self._quiet_heartbeats = 0
        self._heartbeats = get_hub().loop.timer(settings.heartbeat_s, settings.heartbeat_s)
        self._heartbeats.start(self._heartbeat)

    def has_nothing_after(self, tab: Tab) -> bool:
        """Whether the user has offered its tabs nothing newer than `tab`'s
        cursor and is not reading: then a tab whose cursor was the history's newest
        entry at admission still has everything."""
        return nothing_after(tab.cursor_key, self.tabs, reading=self._pumping is not None)

    def wake(self) -> None:
        """Let the pump read the history."""
        self._woken = True
        if self._pumping is None and not self._stopped:
            self._pumping = gevent.spawn(self._pump)

    def _heartbeat(self) -> None:
        """Every heartbeat, on the event loop: the pump reads when the rules say a read is
        due without a wake (push/rules/cursors.py)."""
        self._quiet_heartbeats += 1
        if read_due(self._quiet_heartbeats, any(tab.behind for tab in self.tabs)):
            self.wake()

    def heard(self, data: bytes) -> None:
        """A drain's wake (ValueError if it is not one). One for an entry every local
        tab already has (the local mover's) is ignored before its entries are
        decoded; one that carries its entries is offered like the local mover's (`moved`);
        otherwise the pump reads."""
        newest, carried = split_wake(data)
        if self.tabs:
            try:
                newest_key: tuple[int, int] | None = parse_event_id(newest)
            except InvalidEventId:
                newest_key = None
            if wake_is_old(newest_key, self.tabs):
                return
        if not carried:
            self.wake()
            return
        previous_id, entries = carried_entries(carried)
        self._offer(previous_id, entries)

    def moved(self, result: DrainResult) -> None:
        """This worker's mover added entries: tabs that had everything before them
        get them at once, without reading the history back; the others get a read."""
        self._offer(result.previous_id, result.entries)

    def _offer(self, previous_id: str | None, entries: list[Entry]) -> None:
        previous = parse_event_id(previous_id) if previous_id else (0, 0)
        covered = [tab.offer(entries, read_from=previous) for tab in list(self.tabs)]
        if not all(covered):
            self.wake()

    def use_drainer(self, watcher: MailboxWatcher | None) -> None:
        """Drain through `watcher`, or with a blocking mover of the user's own (None)."""
        if self._drainer is not None:
            self._drainer.stop()
        if watcher is not None:
            self._drainer = WatchedDrainer(watcher, self.keys, self.moved, self.wake)
        else:
            self._drainer = BlockingDrainer(
                self.store, self.keys, self.settings, self.worker_id, self.moved
            )
        self._room_freed = self._drainer.room_freed

    def revoke(self, reason: str) -> None:
        """The user was disconnected: every local tab closes, saying why."""
        for tab in list(self.tabs):
            tab.close(REVOKED, reason)

    def lease_freed(self) -> None:
        """Another worker's drainer for this user stopped: try to take over at once."""
        if self._drainer is not None:
            self._drainer.lease_freed()

    def holder_not_alive(self, confirmed: bool) -> None:
        """The worker that drains this user did not renew its liveness key."""
        if self._drainer is not None:
            self._drainer.holder_not_alive(confirmed)

    @property
    def lease_holder_worker(self) -> str | None:
        """The other worker that moves this user's mail, while ours waits for it."""
        return self._drainer.holder_worker if self._drainer is not None else None

    def written(self, entry: Entry) -> None:
        """A writer put `entry` on a socket: the user's delivered mark goes to it soon
        (push/delivery/marks.py), and then the drainer may move more if the window had filled."""
        self.marks.note(self.keys, entry, self._room_freed)

    def acknowledged(self, key: tuple[int, int]) -> None:
        """A client of this user showed the entry `key` (a receipt for the producer): it
        is recorded with the next flush of the delivered marks (push/delivery/marks.py)."""
        self.marks.acknowledge(self.keys, key)

    def stop(self) -> None:
        self._stopped = True
        self._heartbeats.stop()
        self._heartbeats.close()
        if self._pumping is not None:
            self._pumping.kill(block=True)
        if self._drainer is not None:
            self._drainer.stop()
        # Break the reference cycles (a killed greenlet keeps its GreenletExit, whose
        # traceback holds its frames and so this user; the drainer calls back into
        # it): reference counting then frees a user's objects now, not at the next full
        # garbage collection, which the GC thresholds (push/runtime.py) make rare.
        self._pumping = self._drainer = None
        self._room_freed = _nothing

    def _pump(self) -> None:
        """Read while reads are asked for; a LocalUser holds no parked greenlet for it
        (a parked greenlet costs several KB of saved stack, and most users are idle)."""
        retry = Retry("pump", log)
        try:
            while self._woken:
                self._woken = False
                self._quiet_heartbeats = 0
                try:
                    self._dispatch()
                    retry.went_through()
                except Exception as error:
                    retry.failed(error, "reading history mailbox=%s", self.keys.mailbox)
                    retry.wait()
                    self._woken = True
        finally:
            self._pumping = None

    def _dispatch(self) -> None:
        """Cut the stalled tabs; read from the oldest cursor among the readers and offer
        the entries, again until every tab has been offered what follows its own cursor."""
        batch = self.settings.drain_batch
        now = time.monotonic()
        for tab in list(self.tabs):
            if stalled(tab.behind, tab.behind_since, now):
                tab.close(OUTBOX_FULL)  # it took a full outbox and wrote none of it
        while True:
            open_ones = readers(self.tabs)
            if not open_ones:
                return
            cursor = read_start(open_ones)
            entries, trimmed = self.store.read_after(self.keys, event_id_text(cursor), batch)
            covered = [c.offer(entries, trimmed, read_from=cursor) for c in open_ones]
            if not read_again(len(entries), batch, all(covered)):
                return
