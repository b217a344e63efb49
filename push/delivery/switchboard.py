"""Per-worker registry of live tabs, and the one wake subscriber.

Theory of operation: for each user with a tab in this worker there is a
`LocalUser` with the user's drainer (mailbox -> history, see drainers.py: an entry
in the worker's mailbox watcher, or a blocking mover where Redis cannot track keys)
and the pump, a greenlet that runs only while a read is asked for. The pump reads
the history once for all of the user's local tabs, from the oldest
cursor among them, and offers the entries to each; every tab keeps what
is after its own cursor. The pump runs when woken: by the local mover, by a
wake published by any worker's mover (one pub/sub subscriber per worker,
subscribed to the wake channels of local users), or every few heartbeats (a
timer on the event loop), so a missed wake heals by itself.

Writers (the SSE and WebSocket views) report what they have written; the
LocalUser has the user's delivered mark advanced in Redis (marks.py) and lets the
mover move more when the window had filled.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time

import gevent
from gevent import get_hub
from gevent.lock import Semaphore

from push.delivery.backoff import Backoff
from push.delivery.drainers import BlockingDrainer, Drainer, WatchedDrainer
from push.delivery.marks import DeliveredMarks
from push.delivery.mover import LEASE_FREE, release_leftovers
from push.delivery.tab import OUTBOX_FULL, REVOKED, SERVICE_RESTART, Tab
from push.delivery.watcher import MailboxWatcher
from push.metrics import ACTIVE_USERS, REDIS_ERRORS
from push.model.entries import DrainResult, Entry, carried_entries, split_wake
from push.model.keys import InvalidEventId, UserKeys, parse_event_id, user_keys
from push.model.settings import DeliverySettings
from push.rules.lease import DeathWatch
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.presence import Presence
from push.storage.store import Store
from push.storage.tracking import TrackingRefused
from push.storage.wakes import WakeSubscriber

log = logging.getLogger(__name__)

#: A worker renews its liveness key this often; other workers take its mover leases
#: over once the key has expired.
WORKER_ALIVE_EVERY_S = 2.0
WORKER_ALIVE_TTL_S = 6.0
LEASE_FREE_BYTES = LEASE_FREE.encode()
#: What lua/revoke.lua publishes on the user's wake channel, before the reason.
REVOKED_PREFIX = b"revoked "
#: A tab that has not written its full outbox for this long is cut (it resumes).
STALLED_S = 10.0
#: Without a wake, a pump reads the history every this many heartbeats anyway (a wake
#: lost without the subscriber noticing heals by itself), or every heartbeat while a
#: tab is behind (to cut it once it has stalled for STALLED_S).
RECHECK_HEARTBEATS = 4
#: Users whose presence leases are renewed per round trip.
RENEW_CHUNK = 100


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
        if self._pumping is not None:
            return False
        return all(
            not other.closed and not other.behind and other.cursor_key <= tab.cursor_key
            for other in self.tabs
        )

    def wake(self) -> None:
        """Let the pump read the history."""
        self._woken = True
        if self._pumping is None and not self._stopped:
            self._pumping = gevent.spawn(self._pump)

    def _heartbeat(self) -> None:
        """Every heartbeat, on the event loop: without a wake, the pump reads the history
        every RECHECK_HEARTBEATS heartbeats anyway, or every one while a tab is behind."""
        self._quiet_heartbeats += 1
        if self._quiet_heartbeats >= RECHECK_HEARTBEATS or any(tab.behind for tab in self.tabs):
            self.wake()

    def heard(self, data: bytes) -> None:
        """A drain's wake (ValueError if it is not one). One for an entry every local
        tab already has (the local mover's) is ignored before its entries are
        decoded; one that carries its entries is offered like the local mover's (`moved`);
        otherwise the pump reads."""
        newest, carried = split_wake(data)
        if self.tabs:
            try:
                newest_key = parse_event_id(newest)
            except InvalidEventId:
                newest_key = None
            if newest_key is not None and all(tab.cursor_key >= newest_key for tab in self.tabs):
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
        backoff = Backoff()
        try:
            while self._woken:
                self._woken = False
                self._quiet_heartbeats = 0
                try:
                    self._dispatch()
                    backoff.reset()
                except Exception as error:
                    if isinstance(error, REDIS_UNAVAILABLE):
                        REDIS_ERRORS.labels("pump").inc()
                        log.warning(
                            "redis error reading history mailbox=%s error=%s",
                            self.keys.mailbox,
                            error,
                        )
                    else:
                        log.exception("pump failed mailbox=%s", self.keys.mailbox)
                    backoff.sleep()
                    self._woken = True
        finally:
            self._pumping = None

    def _dispatch(self) -> None:
        """Read from the oldest cursor among the open connections and offer the entries,
        again until every tab has been offered what follows its own cursor."""
        batch = self.settings.drain_batch
        now = time.monotonic()
        for tab in list(self.tabs):
            if tab.behind and now - tab.behind_since > STALLED_S:
                tab.close(OUTBOX_FULL)  # it took a full outbox and wrote none of it
        while True:
            # Closed tabs and those waiting to write a full outbox do not hold the
            # read back for the others.
            open_ones = [c for c in self.tabs if not c.closed and not c.behind]
            if not open_ones:
                return
            cursor = min(tab.cursor_key for tab in open_ones)
            entries, trimmed = self.store.read_after(self.keys, f"{cursor[0]}-{cursor[1]}", batch)
            covered = [c.offer(entries, trimmed, read_from=cursor) for c in open_ones]
            if len(entries) < batch and all(covered):
                return


class Switchboard:
    """This worker's users and their tabs; started lazily in the serving process."""

    def __init__(self, store: Store, settings: DeliverySettings, presence: Presence) -> None:
        self.store = store
        self.settings = settings
        self.presence = presence
        self.marks = DeliveredMarks(store, settings.history_ttl_s)
        self.users: dict[str, LocalUser] = {}
        self._by_wake: dict[bytes, LocalUser] = {}
        self._wakes: WakeSubscriber | None = None
        self._subscription_lock = Semaphore()
        self._start_lock = Semaphore()
        self._pid: int | None = None
        self.worker_id = ""
        #: The worker's mailbox watcher (None: every user has a blocking mover).
        self.watcher: MailboxWatcher | None = None
        self._deaths = DeathWatch()
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
            self._by_wake[keys.wake.encode()] = user
            self._set_subscription(tab.user_id, keys.wake)
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
        del self._by_wake[user.keys.wake.encode()]
        ACTIVE_USERS.dec()
        user.stop()
        self._set_subscription(tab.user_id, user.keys.wake)

    def _set_subscription(self, user_id: str, wake: str) -> None:
        """Subscribe or unsubscribe `wake` to match whether the user has a channel now.

        Deciding under the lock, from the registry as it is at that moment, keeps a
        quick leave-and-return of a user from ending unsubscribed."""
        with self._subscription_lock:
            assert self._wakes is not None
            try:
                if user_id in self.users:
                    self._wakes.subscribe(wake)
                else:
                    self._wakes.unsubscribe(wake)
            except REDIS_UNAVAILABLE as error:
                # The listener reconnects and re-subscribes what redis-py recorded.
                log.warning("redis error on subscription channel=%s error=%s", wake, error)

    def _ensure_started(self) -> None:
        """Start the worker's parts on its first stream; the streams that arrive while the
        watcher asks Redis whether it tracks keys wait for it."""
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
            self._wakes = self.store.wake_subscriber()
            self._start_watcher()
            gevent.spawn(self._listen)
            gevent.spawn(self._renew_presence)
            gevent.spawn(self._keep_alive)
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

    def _keep_alive(self) -> None:
        """Tell other workers this one runs, so they leave its mover leases alone; wake
        the movers waiting on a worker that stopped saying so."""
        while True:
            try:
                self.store.mark_worker_alive(self.worker_id, WORKER_ALIVE_TTL_S)
                release_leftovers(self.store)
                self._wake_movers_of_dead_workers()
            except REDIS_UNAVAILABLE as error:
                REDIS_ERRORS.labels("liveness").inc()
                log.warning("redis error marking the worker alive error=%s", error)
            gevent.sleep(WORKER_ALIVE_EVERY_S)

    def _wake_movers_of_dead_workers(self) -> None:
        """One liveness read per other worker holding leases our drainers wait for; a
        worker seen dead twice, a while apart, is confirmed dead (lease.py)."""
        waiting: dict[str, list[LocalUser]] = {}
        for user in list(self.users.values()):
            worker = user.lease_holder_worker
            if worker is not None:
                waiting.setdefault(worker, []).append(user)
        for worker in self._deaths.watched() - set(waiting):
            self._deaths.forget(worker)
        for worker, users in waiting.items():
            alive = self.store.worker_alive(worker)
            confirmed = self._deaths.seen(worker, alive, time.monotonic())
            if not alive:
                for user in users:
                    user.holder_not_alive(confirmed)

    def _renew_presence(self) -> None:
        """Keep the presence leases of this worker's tabs alive, RENEW_CHUNK users a
        round trip with a yield between: one worker's thousands of users must not hold its
        loop, or Redis, for tens of milliseconds. Each chunk is read just before it goes,
        so a tab that left meanwhile is not renewed."""
        while True:
            gevent.sleep(self.presence.renew_every_s)
            users = list(self.users.values())
            for start in range(0, len(users), RENEW_CHUNK):
                leases = {
                    user.keys: [tab.id for tab in user.tabs]
                    for user in users[start : start + RENEW_CHUNK]
                    if user.tabs
                }
                try:
                    self.presence.renew(leases)
                except REDIS_UNAVAILABLE as error:
                    REDIS_ERRORS.labels("presence").inc()
                    log.warning("redis error renewing presence error=%s", error)
                    break
                gevent.sleep(0)

    def _subscribe_all(self) -> None:
        """(Re)subscribe every local user's wake channel."""
        assert self._wakes is not None
        self._wakes.refresh()
        with self._subscription_lock:
            self._wakes.resubscribe([channel.keys.wake for channel in self.users.values()])

    def _wake_everyone(self) -> None:
        """Wakes published while a channel had no subscriber are lost: look anyway, and
        let drainers without the lease ask for it (a "free" wake may be among the lost).
        On a cluster a slot may have moved: the watcher follows it."""
        if self.watcher is not None:
            self.watcher.check_placements()
        for user in list(self.users.values()):
            user.lease_freed()
            user.wake()

    def _listen(self) -> None:
        """Hand each wake to its user. While some channels have no subscriber (a node is
        away), try again with backoff, and keep serving the wakes of the others."""
        assert self._wakes is not None
        backoff = Backoff()
        retry_at = 0.0
        while True:
            if not self._wakes.healthy and time.monotonic() >= retry_at:
                try:
                    self._subscribe_all()
                    backoff.reset()
                except REDIS_UNAVAILABLE as error:
                    REDIS_ERRORS.labels("subscriber").inc()
                    log.warning("redis error subscribing to wakes error=%s", error)
                    retry_at = time.monotonic() + backoff.next_s()
                self._wake_everyone()
            timeout = self.settings.heartbeat_s
            if not self._wakes.healthy:
                timeout = min(timeout, max(retry_at - time.monotonic(), 0.01))
            try:
                message = self._wakes.get_message(timeout=timeout)
            except REDIS_UNAVAILABLE as error:
                REDIS_ERRORS.labels("subscriber").inc()
                log.warning("redis error in wake subscriber error=%s", error)
                backoff.sleep()
                self._wake_everyone()
                continue
            if message is None:
                continue
            wake, data = message
            user = self._by_wake.get(wake)
            if user is not None:
                if data == LEASE_FREE_BYTES:
                    user.lease_freed()
                    user.wake()
                    continue
                if data.startswith(REVOKED_PREFIX):
                    user.revoke(data[len(REVOKED_PREFIX) :].decode(errors="replace"))
                    continue
                try:
                    user.heard(data)
                except Exception:
                    # This greenlet carries every wake of the worker: it must not die.
                    log.exception("unreadable wake channel=%s", wake.decode(errors="replace"))
                    user.wake()
