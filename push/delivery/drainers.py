"""What moves one local user's mail into the history, as its LocalUser (switchboard.py) sees it.

Two kinds, chosen per worker by PUSH_MAILBOX_WATCH (see switchboard.py):

- `WatchedDrainer` (notify, the default where Redis allows it): the user is one entry of
  the worker's mailbox watcher (watcher.py); it costs no Redis connection and no greenlet.
- `BlockingDrainer` (block): a mover greenlet of the user's own with a connection blocked
  on BLMOVE (mover.py), for Redis servers that cannot track keys.

Both answer the same calls, so the user and the switchboard need not know which is running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import gevent

from push.delivery.mover import Mover
from push.delivery.watcher import MailboxWatcher
from push.model.entries import DrainResult
from push.model.keys import UserKeys
from push.model.settings import DeliverySettings
from push.storage.store import Store


class Drainer(Protocol):
    @property
    def holder_worker(self) -> str | None:
        """The other worker that drains this user while this one waits for the lease."""

    def room_freed(self) -> None:
        """The user's delivered mark moved: the flow-control window may have room."""

    def lease_freed(self) -> None:
        """The lease's holder said "free": ask for it now."""

    def holder_not_alive(self, confirmed: bool) -> None:
        """The holder's worker did not renew its liveness key (`confirmed`: twice, a
        while apart): take the lease over when the rules allow (lease.py)."""

    def stop(self) -> None: ...


def _nobody(result: DrainResult) -> None:
    """A stopped drainer reports to no one."""


class BlockingDrainer:
    """A mover greenlet with a connection of its own, blocked on BLMOVE."""

    __slots__ = ("_greenlet", "_mover")

    def __init__(
        self,
        store: Store,
        keys: UserKeys,
        settings: DeliverySettings,
        worker_id: str,
        on_moved: Callable[[DrainResult], None],
    ) -> None:
        self._mover = Mover(store, keys, settings, on_moved=on_moved, worker_id=worker_id)
        self._greenlet: gevent.Greenlet | None = gevent.spawn(self._mover.run)

    @property
    def holder_worker(self) -> str | None:
        return self._mover.holder_worker

    def room_freed(self) -> None:
        self._mover.room_freed.set()

    def lease_freed(self) -> None:
        self._mover.lease_free.set()

    def holder_not_alive(self, confirmed: bool) -> None:
        # The mover reads the holder's liveness again itself and applies the rules.
        self._mover.lease_free.set()

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
        # Break the reference cycles (a killed greenlet keeps its GreenletExit, whose
        # traceback holds its frames; the mover calls back into the user): reference
        # counting then frees a user's objects now, not at the next full collection.
        self._greenlet = None
        self._mover.on_moved = _nobody


class WatchedDrainer:
    """The user's entry in the worker's mailbox watcher."""

    __slots__ = ("_user", "_watcher")

    def __init__(
        self,
        watcher: MailboxWatcher,
        keys: UserKeys,
        on_moved: Callable[[DrainResult], None],
        on_reopened: Callable[[], None],
    ) -> None:
        self._watcher = watcher
        self._user = watcher.watch(keys, on_moved, on_reopened)

    @property
    def holder_worker(self) -> str | None:
        return self._user.holder_worker

    def room_freed(self) -> None:
        self._watcher.room_freed(self._user)

    def lease_freed(self) -> None:
        self._watcher.lease_freed(self._user)

    def holder_not_alive(self, confirmed: bool) -> None:
        if confirmed:
            self._watcher.holder_dead(self._user)

    def stop(self) -> None:
        self._watcher.unwatch(self._user)
