"""The worker's registry of local users and their tabs.

Theory of operation: a tab that opens is attached to its user's `LocalUser`
(local_user.py), made when the user's first tab arrives in this worker and stopped when its
last one goes; the user's drainer moves its mail (drainers.py: an entry in the worker's
mailbox watcher, watcher.py, or where Redis cannot track keys a blocking mover of its own,
mover.py). Started lazily on the worker's first stream, with the worker's one wake
subscriber (wake_listener.py) and its chores (upkeep.py: liveness, presence).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket

import gevent
from gevent.lock import Semaphore

from push.delivery.local_user import LocalUser
from push.delivery.marks import DeliveredMarks
from push.delivery.tab import SERVICE_RESTART, Tab
from push.delivery.upkeep import keep_alive, renew_presence
from push.delivery.wake_listener import WakeListener
from push.delivery.watcher import MailboxWatcher
from push.metrics import ACTIVE_USERS
from push.model.keys import user_keys
from push.model.settings import DeliverySettings
from push.storage.presence import Presence
from push.storage.store import Store
from push.storage.tracking import TrackingRefused

log = logging.getLogger(__name__)


class Switchboard:
    """This worker's users and their tabs; started lazily in the serving process."""

    def __init__(self, store: Store, settings: DeliverySettings, presence: Presence) -> None:
        self.store = store
        self.settings = settings
        self.presence = presence
        self.marks = DeliveredMarks(store, settings.history_ttl_s)
        self.users: dict[str, LocalUser] = {}
        #: The worker's wake subscriber, from its start.
        self._listener: WakeListener | None = None
        self._start_lock = Semaphore()
        self._pid: int | None = None
        self.worker_id = ""
        #: The worker's mailbox watcher (None: every user has a blocking mover).
        self.watcher: MailboxWatcher | None = None
        #: Set when the worker is shutting down: new streams are turned away.
        self.draining = False

    def shut_down(self) -> None:
        """Turn new streams away and ask every open one to close, clients to come back."""
        self.draining = True
        for user in list(self.users.values()):
            for tab in list(user.tabs):
                tab.close(SERVICE_RESTART)

    def attach(self, tab: Tab, caught_up: bool = False) -> LocalUser:
        """Register a tab; starts the user's LocalUser if it is the first here.

        The tab gets a read of the history unless it is `caught_up` (the history
        held nothing after its cursor when it was admitted) and the user's LocalUser was
        already here and has handed out nothing newer since: then the wakes and the
        mover's entries that follow reach it like the others. A new user always reads:
        a wake published before its subscription took effect is lost."""
        self._ensure_started()
        user = self.users.get(tab.user_id)
        up_to_date = caught_up and user is not None and user.has_nothing_after(tab)
        if user is None:
            keys = user_keys(tab.user_id, self.settings.mailbox_template)
            user = LocalUser(
                keys, self.store, self.settings, self.worker_id, self.marks, self.watcher
            )
            self.users[tab.user_id] = user
            ACTIVE_USERS.inc()
            assert self._listener is not None
            self._listener.add(tab.user_id, user)
        user.tabs.add(tab)
        tab.on_drained = user.wake
        if not up_to_date:
            user.wake()
        return user

    def detach(self, tab: Tab) -> None:
        """Forget a tab; the last one of a user stops that user's LocalUser."""
        user = self.users.get(tab.user_id)
        if user is None or tab not in user.tabs:
            return
        user.tabs.discard(tab)
        if user.tabs:
            return
        del self.users[tab.user_id]
        assert self._listener is not None
        self._listener.drop(user)  # before it stops: no wake reaches a stopping user
        ACTIVE_USERS.dec()
        user.stop()
        self._listener.follow(tab.user_id, user.keys.wake)

    def _ensure_started(self) -> None:
        """Start the worker's parts on its first stream; the streams that arrive while the
        watcher asks Redis whether it tracks keys wait for it."""
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
            self._listener = WakeListener(
                self.store.wake_subscriber(),
                self.users,
                self.settings.heartbeat_s,
                on_gap=self._wake_everyone,
            )
            self._start_watcher()
            gevent.spawn(self._listener.run)
            gevent.spawn(renew_presence, self.presence, self.users)
            gevent.spawn(keep_alive, self.store, self.worker_id, self.users)
            self._pid = os.getpid()

    def _start_watcher(self) -> None:
        """The mailbox watcher, unless PUSH_MAILBOX_WATCH=block or Redis refuses to track
        keys (then every user gets a blocking mover, and one log line says why)."""
        if self.settings.mailbox_watch == "block":
            log.info("mailbox watch: block (a blocked Redis connection per online user)")
            return
        self.watcher = MailboxWatcher(
            self.store, self.settings, self.worker_id, on_refused=self._fall_back
        )
        try:
            self.watcher.start()
        except TrackingRefused as refused:
            self._fall_back(str(refused))
            return
        log.info(
            "mailbox watch: notify (a tracked Redis connection per worker, per primary on "
            "a cluster, for every user)"
        )

    def _fall_back(self, reason: str) -> None:
        """Redis will not track keys: move every user's mail with a blocking mover."""
        watcher, self.watcher = self.watcher, None
        if watcher is None:
            return
        level = logging.ERROR if self.settings.mailbox_watch == "notify" else logging.WARNING
        log.log(
            level,
            "PUSH_MAILBOX_WATCH=%s but Redis will not track keys (%s): "
            "falling back to block (a blocked Redis connection per online user)",
            self.settings.mailbox_watch,
            reason,
        )
        watcher.stop()
        for user in list(self.users.values()):
            user.use_drainer(None)

    def _wake_everyone(self) -> None:
        """Wakes published while a channel had no subscriber are lost: look anyway, and
        let drainers without the lease ask for it (a "free" wake may be among the lost).
        On a cluster a slot may have moved: the watcher follows it."""
        if self.watcher is not None:
            self.watcher.check_placements()
        for user in list(self.users.values()):
            user.lease_freed()
            user.wake()
