"""The mailbox watcher's part on one Redis server: a tracked connection, and the greenlet
that reads its hints and runs the turns that drain the users they name (`NodeWatch`; the
turns themselves: node_work.py; a user as the watcher sees it: watched_mailbox.py).

Theory of operation: one tracked connection per server (tracking.py), read with a libev
watcher on its socket. Each pass of the loop notes the hints the connection received
(mailboxes that were written), takes the users whose timers are due, and runs turns until
nothing is left to do. A lost connection is opened again with backoff; tracking starts
afresh on it, so every user is drained and armed again, and told (`on_reopened`) that
answers were lost. On a cluster, a node that lost its users' slots hands them to their
new owners, and ends once nobody of this worker lives on it.
"""

from __future__ import annotations

import logging
import time

import gevent
from gevent import get_hub
from gevent.lock import Semaphore

from push.delivery.node_work import NodeWork, Placement
from push.delivery.retry import Retry
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.tracking import TrackedConnection, TrackingRefused

log = logging.getLogger(__name__)

#: libev's EV_READ.
READ = 1
#: The node name of users whose slot owner could not be learned yet (a cluster failing
#: over); their NodeWatch only asks the slot map again until it can place them.
UNPLACED = "(unplaced)"


class NodeWatch(NodeWork):
    """The watcher's part on one Redis server: a tracked connection, and the greenlet
    that reads its hints and drains the users they name."""

    def __init__(self, watcher: Placement, name: str | None) -> None:
        super().__init__(watcher, name)
        self._opening = Semaphore()
        self._connection: TrackedConnection | None = None
        #: Whether a connection was open before: entries moved by drains whose answers
        #: were lost with it are in the history, and the users' pumps must read them.
        self._opened_before = False
        self._greenlet: gevent.Greenlet | None = gevent.spawn(self._run)

    def open(self) -> None:
        """Open the tracked connection (TrackingRefused, or a Redis error, as it comes)."""
        with self._opening:  # the switchboard's start and this node's greenlet may both ask
            if self._connection is not None or self.name == UNPLACED:
                return
            connection = self.watcher.store.tracked_connection(self.name)
            connection.open()
            self._connection = connection
            # Tracking starts afresh on a new connection: every user is drained and armed.
            for user in self.users.values():
                self.dirty[user] = None
                if self._opened_before:
                    user.on_reopened()
            self._opened_before = True
            self._wakeup.set()

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
        self._close()

    # ----- the loop

    def _run(self) -> None:
        retry = Retry("watcher", log)
        try:
            while True:
                if self.name == UNPLACED:
                    self._place_orphans(retry)
                    if not self.users:
                        return
                    continue
                try:
                    self.open()
                    self._serve(retry)
                except TrackingRefused as refused:
                    log.warning("mailbox watcher: %s node=%s", refused, self.name)
                    self._close()
                    self.watcher.refuse(str(refused))
                    return
                except REDIS_UNAVAILABLE as error:
                    retry.failed(error, "in mailbox watcher node=%s", self.name)
                    self._close()
                    if self.watcher.store.cluster:
                        self.watcher.replace(self.users.values(), self)
                    retry.wait()
                if self.name is not None and not self.users and not self.releases:
                    return  # a cluster node nobody of ours lives on any more
        finally:
            self._greenlet = None
            self._close()
            self.watcher.node_done(self)

    def _place_orphans(self, retry: Retry) -> None:
        retry.wait()
        self.watcher.replace(self.users.values(), self)

    def _serve(self, retry: Retry) -> None:
        connection = self._connection
        assert connection is not None
        readable = get_hub().loop.io(connection.fileno(), READ)
        readable.start(self._wakeup.set)
        try:
            while True:
                self._wakeup.wait(self._timers.wait_s(time.monotonic(), self.watcher.heal_s))
                self._wakeup.clear()
                connection.read_available()
                self._note(connection.take_invalidated())
                for user in self._timers.due(time.monotonic(), self._is_mine):
                    self.dirty[user] = None
                while self.dirty or self.releases:
                    self._turn(connection)
                    retry.went_through()
                if self.name is not None and not self.users and not self.releases:
                    return
        finally:
            readable.stop()
            readable.close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
