"""The mailbox watcher: one per worker, it learns which local users' mailboxes received
mail and drains them, with no Redis connection and no greenlet per user.

Theory of operation:

- One tracked connection per Redis server (per primary on a cluster; tracking.py) and a
  greenlet for it (`NodeWatch`). After each drain of a user the same pipeline sends
  `CLIENT CACHING yes` + `LLEN mailbox`: that arms one invalidation, so the next LPUSH by
  any producer tells this connection the mailbox's name. The LLEN's answer closes the
  race: mail that came between the drain and the arming is seen there.
- The hint is never the message: only the drain script moves mail (mailbox -> history,
  atomically), and a user is drained when a hint names it, when a drain left more
  behind, and at least every heal interval (HEAL_HEARTBEATS heartbeats), so a hint that
  was lost (a dropped connection, an evicted tracking entry) costs a delay, never a
  message. After the connection is (re)opened every user is drained and armed again.
- Whatever one turn of the loop learned is drained in one pipeline: one round trip for
  all the users that received mail meanwhile, however many.
- One drainer per user across the fleet: every drain carries a claim on the user's mover
  lease (`<worker id>#watch`), checked in the drain script itself. A drain for a user
  whose lease another worker holds moves nothing and names the holder; this worker then
  waits (lease.py) and claims again when the holder says "free", when the switchboard finds the
  holder's worker dead (then it steals), or after a while.
- Flow control is the drain script's: a drain that found the window full is tried again
  when the user's delivered mark moves (`room_freed`) or after WINDOW_RECHECK_S.
- Every decision about a user is "drain it at time t": one timer per user in a heap.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterable

import gevent
import hiredis
import redis
from gevent import get_hub
from gevent.event import Event
from gevent.lock import Semaphore

from push.delivery.backoff import Backoff
from push.delivery.mover import WINDOW_RECHECK_S, counted, drain_limits
from push.metrics import REDIS_ERRORS
from push.model.entries import DrainResult, LeaseClaim, drain_result
from push.model.keys import UserKeys
from push.model.settings import DeliverySettings
from push.rules.lease import holder_worker, next_ask_s
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.presence import worker_prefix
from push.storage.store import Store
from push.storage.tracking import TrackedConnection, TrackingRefused, pack

log = logging.getLogger(__name__)

#: Every held user is drained (and its mailbox armed again) at least every this many
#: heartbeats, even without a hint.
HEAL_HEARTBEATS = 4
#: A drain that moved more than one message (mail is dense) is followed by the next one
#: this much later at the soonest, so that the next batch gathers: fewer drains, wakes and
#: socket writes per message. The first message after a quiet spell is drained at once,
#: so light load does not wait. Measured (bench, full plan, one run each): 200 users x 5
#: tabs 129,000 deliveries/s at 5 ms (blocking movers 182,000), 207,000 at 50 ms; 8,000
#: users x 1 12,700 and 15,600. Under load a user's later messages wait up to this long.
GATHER_S = 0.05
#: Users drained per pipeline: a worker with thousands of users that received mail at once
#: does not hold its loop, or Redis, for long on one round trip.
TURN_USERS = 500
#: A user whose drain met a passing condition (a slot migrating, Redis loading its data,
#: a busy script) is drained again this soon.
RETRY_SOON_S = 0.2
#: ... and one whose drain failed for a reason of its own (a mailbox that is not a list).
RETRY_LATER_S = 5.0
#: libev's EV_READ.
READ = 1
#: Error replies after which the user is simply drained again soon.
PASSING = {"TRYAGAIN", "CLUSTERDOWN", "LOADING", "BUSY", "MASTERDOWN"}
#: Error replies that mean this connection now talks to the wrong server.
WRONG_SERVER = {"READONLY", "MOVED", "ASK"}
#: Error replies that mean the server forgot our scripts (a restart, a promoted replica).
NO_SCRIPT = "NOSCRIPT"
#: What arms the next command's key for one invalidation (tracking.py).
ARM = pack(("CLIENT", "CACHING", "yes"))


class WatchedMailbox:
    """One local user's mailbox, as the watcher sees it; no greenlet of its own."""

    __slots__ = (
        "gather_until",
        "holder",
        "holding",
        "key",
        "keys",
        "look_at",
        "node",
        "on_moved",
        "on_reopened",
        "packed",
        "queued_at",
        "steal_from",
        "stopped",
        "window_full",
    )

    def __init__(
        self,
        keys: UserKeys,
        on_moved: Callable[[DrainResult], None],
        on_reopened: Callable[[], None],
    ) -> None:
        self.keys = keys
        self.key = keys.mailbox.encode()
        #: Called with what a drain moved; `on_reopened` after the watcher's connection was
        #: lost and opened again (answers lost with it left entries for the pump to read).
        self.on_moved = on_moved
        self.on_reopened = on_reopened
        #: Whether this worker holds the user's lease (as its last drain found).
        self.holding = False
        #: The other drainer that holds the lease, when this worker waits for it.
        self.holder: str | None = None
        #: A holder whose worker the switchboard confirmed dead: the next claim steals from it.
        self.steal_from: str | None = None
        self.window_full = False
        #: Dense mail: the next drain waits until then (GATHER_S).
        self.gather_until = 0.0
        self.stopped = False
        self.node: NodeWatch | None = None
        #: When this user is to be drained next without a hint (monotonic seconds), and
        #: the earliest time it has a timer queued for.
        self.look_at = 0.0
        self.queued_at: float | None = None
        #: This user's turn in a pipeline, packed while its mail flows and dropped when a
        #: drain finds nothing (most users are idle: 600 bytes each): its drain with a
        #: claim on the lease, then `CLIENT CACHING yes` and `LLEN mailbox`, which arm its
        #: hint again.
        self.packed = b""

    @property
    def holder_worker(self) -> str | None:
        """The other worker whose drainer holds the lease while this one waits."""
        return holder_worker(self.holder) if self.holder else None


class MailboxWatcher:
    """This worker's mailbox watcher: its users, spread over one NodeWatch per server."""

    def __init__(
        self,
        store: Store,
        settings: DeliverySettings,
        worker_id: str,
        on_refused: Callable[[str], None],
    ) -> None:
        self.store = store
        self.limits = drain_limits(settings)
        self.heal_s = settings.heartbeat_s * HEAL_HEARTBEATS
        self.holder_id = f"{worker_id}#watch"
        self.prefix = worker_prefix()
        self.on_refused = on_refused
        self.nodes: dict[str | None, NodeWatch] = {}
        #: Why the server refused to track keys, once it did.
        self.refused: str | None = None

    def start(self) -> None:
        """Open the connection to each server there is now: TrackingRefused if a server
        will not track keys (the caller falls back to blocking movers). A server that
        does not answer is retried by its NodeWatch."""
        names: list[str | None] = [None]
        if self.store.cluster:
            try:
                names = [node.name for node in self.store.redis.get_primaries()]
            except REDIS_UNAVAILABLE:
                names = []
        for name in names:
            node = self._node(name)
            try:
                node.open()
            except REDIS_UNAVAILABLE as error:
                log.warning("mailbox watcher: redis did not answer node=%s error=%s", name, error)

    def watch(
        self,
        keys: UserKeys,
        on_moved: Callable[[DrainResult], None],
        on_reopened: Callable[[], None],
    ) -> WatchedMailbox:
        """Start watching a user's mailbox: it is drained (and its lease claimed) at once."""
        user = WatchedMailbox(keys, on_moved, on_reopened)
        self._place(user)
        return user

    def pack_turn(self, keys: UserKeys, claim: LeaseClaim) -> bytes:
        """A user's three commands in a pipeline: drain with `claim`, arm the hint again."""
        return b"".join(
            (
                pack(self.store.drain_command(keys, self.limits, claim, self.prefix)),
                ARM,
                pack(("LLEN", keys.mailbox)),
            )
        )

    def unwatch(self, user: WatchedMailbox) -> None:
        """The user's last local connection went: give its lease back, if it was ours."""
        user.stopped = True
        user.on_moved = _nobody
        user.on_reopened = _nothing
        node = user.node
        if node is not None:
            node.remove(user)

    def room_freed(self, user: WatchedMailbox) -> None:
        """The user's delivered mark moved: a drain that found the window full may go on."""
        if user.window_full and user.node is not None and not user.stopped:
            user.window_full = False
            user.node.drain_now(user)

    def lease_freed(self, user: WatchedMailbox) -> None:
        """The lease's holder gave it back (or its worker is suspected dead): claim now."""
        if not user.holding and user.node is not None and not user.stopped:
            user.node.drain_now(user)

    def holder_dead(self, user: WatchedMailbox) -> None:
        """The hub confirmed the holder's worker dead: the next claim takes the lease."""
        if not user.holding and user.holder is not None and user.node is not None:
            user.steal_from = user.holder
            user.node.drain_now(user)

    def stop(self) -> None:
        for node in list(self.nodes.values()):
            node.stop()
        self.nodes.clear()

    # ----- placement (cluster: the primary that owns the user's slot)

    def _node(self, name: str | None) -> NodeWatch:
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = NodeWatch(self, name)
        return node

    def _place(self, user: WatchedMailbox) -> None:
        try:
            name = self.store.node_of(user.keys.mailbox)
        except REDIS_UNAVAILABLE:
            name = None if not self.store.cluster else _UNPLACED
        self._node(name).add(user)

    def replace(self, users: Iterable[WatchedMailbox], source: NodeWatch) -> None:
        """Move users to the node that owns their slot now (a failover, a migration)."""
        try:
            self.store.refresh_slot_map()
        except REDIS_UNAVAILABLE as error:
            log.warning("mailbox watcher: no slot map yet error=%s", error)
        self._move_to_owners(list(users), source)

    def check_placements(self) -> None:
        """A slot may have moved or a node failed (the wake subscriber heard of it, which
        a user's empty mailbox, left behind on the old owner, cannot tell us): move every
        user whose slot another node owns now."""
        if not self.store.cluster:
            return
        try:
            self.store.refresh_slot_map()
        except REDIS_UNAVAILABLE as error:
            log.warning("mailbox watcher: no slot map yet error=%s", error)
            return
        for node in list(self.nodes.values()):
            self._move_to_owners(list(node.users.values()), node)

    def _move_to_owners(self, users: list[WatchedMailbox], source: NodeWatch) -> None:
        for user in users:
            if user.stopped:
                continue
            try:
                name = self.store.node_of(user.keys.mailbox)
            except REDIS_UNAVAILABLE:
                name = _UNPLACED
            if name != source.name:
                source.forget(user)
                self._node(name).add(user)

    def refuse(self, reason: str) -> None:
        """A server refused to track keys: no watcher on this worker, blocking movers."""
        if self.refused is None:
            self.refused = reason
            self.on_refused(reason)

    def node_done(self, node: NodeWatch) -> None:
        if self.nodes.get(node.name) is node:
            del self.nodes[node.name]


def _nobody(result: DrainResult) -> None:
    """A stopped user's drains report to no one."""


def _nothing() -> None:
    """A stopped user has no pump to wake."""


#: The node name of users whose slot owner could not be learned yet (a cluster failing
#: over); their NodeWatch only asks the slot map again until it can place them.
_UNPLACED = "(unplaced)"


class NodeWatch:
    """The watcher's part on one Redis server: a tracked connection, and the greenlet
    that reads its hints and drains the users they name."""

    def __init__(self, watcher: MailboxWatcher, name: str | None) -> None:
        self.watcher = watcher
        self.name = name
        self.users: dict[bytes, WatchedMailbox] = {}
        #: Users to drain in the next turn, in the order they were named.
        self.dirty: dict[WatchedMailbox, None] = {}
        #: Leases to give back: mailbox -> keys.
        self.releases: dict[bytes, UserKeys] = {}
        self._timers: list[tuple[float, int, WatchedMailbox]] = []
        self._sequence = itertools.count()
        self._wakeup = Event()
        self._opening = Semaphore()
        self._connection: TrackedConnection | None = None
        self._scripts_missing = False
        #: Why the connection must be opened again (set while answers are handed on).
        self._reconnect: str | None = None
        #: Whether a connection was open before: entries moved by drains whose answers
        #: were lost with it are in the history, and the users' pumps must read them.
        self._opened_before = False
        self._greenlet: gevent.Greenlet | None = gevent.spawn(self._run)

    # ----- what the watcher asks

    def add(self, user: WatchedMailbox) -> None:
        user.node = self
        self.users[user.key] = user
        self.releases.pop(user.key, None)  # the user is back before its lease was given
        self.drain_now(user)

    def remove(self, user: WatchedMailbox) -> None:
        if self.users.get(user.key) is user:
            del self.users[user.key]
            if user.holding:
                self.releases[user.key] = user.keys
                self._wakeup.set()
        self.dirty.pop(user, None)

    def forget(self, user: WatchedMailbox) -> None:
        """The user moved to another node (its lease stays held)."""
        if self.users.get(user.key) is user:
            del self.users[user.key]
        self.dirty.pop(user, None)
        user.node = None

    def drain_now(self, user: WatchedMailbox) -> None:
        self.dirty[user] = None
        self._wakeup.set()

    def open(self) -> None:
        """Open the tracked connection (TrackingRefused, or a Redis error, as it comes)."""
        with self._opening:  # the switchboard's start and this node's greenlet may both ask
            if self._connection is not None or self.name == _UNPLACED:
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
        backoff = Backoff()
        try:
            while True:
                if self.name == _UNPLACED:
                    self._place_orphans(backoff)
                    if not self.users:
                        return
                    continue
                try:
                    self.open()
                    self._serve(backoff)
                except TrackingRefused as refused:
                    log.warning("mailbox watcher: %s node=%s", refused, self.name)
                    self._close()
                    self.watcher.refuse(str(refused))
                    return
                except REDIS_UNAVAILABLE as error:
                    REDIS_ERRORS.labels("watcher").inc()
                    log.warning("redis error in mailbox watcher node=%s error=%s", self.name, error)
                    self._close()
                    if self.watcher.store.cluster:
                        self.watcher.replace(self.users.values(), self)
                    backoff.sleep()
                if self.name is not None and not self.users and not self.releases:
                    return  # a cluster node nobody of ours lives on any more
        finally:
            self._greenlet = None
            self._close()
            self.watcher.node_done(self)

    def _place_orphans(self, backoff: Backoff) -> None:
        backoff.sleep()
        self.watcher.replace(self.users.values(), self)

    def _serve(self, backoff: Backoff) -> None:
        connection = self._connection
        assert connection is not None
        readable = get_hub().loop.io(connection.fileno(), READ)
        readable.start(self._wakeup.set)
        try:
            while True:
                self._wakeup.wait(self._until_next_timer())
                self._wakeup.clear()
                connection.read_available()
                self._note(connection.take_invalidated())
                self._take_due(time.monotonic())
                while self.dirty or self.releases:
                    self._turn(connection)
                    backoff.reset()
                if self.name is not None and not self.users and not self.releases:
                    return
        finally:
            readable.stop()
            readable.close()

    def _until_next_timer(self) -> float:
        if not self._timers:
            return self.watcher.heal_s
        return max(0.0, min(self.watcher.heal_s, self._timers[0][0] - time.monotonic()))

    def _note(self, invalidated: list[bytes | None]) -> None:
        for key in invalidated:
            if key is None:  # a flush: every key
                for user in self.users.values():
                    self.dirty[user] = None
                continue
            user = self.users.get(key)
            if user is not None and user.holding and not user.window_full:
                self._drain_soon(user, time.monotonic())

    def _drain_soon(self, user: WatchedMailbox, now: float) -> None:
        """Drain in the next turn, or once its dense mail has gathered (GATHER_S)."""
        if user.gather_until > now:
            self._schedule(user, user.gather_until)
        else:
            self.dirty[user] = None

    def _schedule(self, user: WatchedMailbox, at: float) -> None:
        user.look_at = at
        if user.queued_at is None or at < user.queued_at:
            user.queued_at = at
            heapq.heappush(self._timers, (at, next(self._sequence), user))

    def _take_due(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, _, user = heapq.heappop(timers)
            if user.stopped or user.node is not self or user.queued_at != at:
                continue
            user.queued_at = None
            if user.look_at <= now:
                self.dirty[user] = None
            else:
                self._schedule(user, user.look_at)

    def _turn(self, connection: TrackedConnection) -> None:
        """One pipeline: drain (and arm) up to TURN_USERS users, give leases back."""
        watcher = self.watcher
        store = watcher.store
        if self._scripts_missing:
            sources = list(store.script_sources().values())
            connection.execute_packed(
                b"".join(pack(("SCRIPT", "LOAD", source)) for source in sources), len(sources)
            )
            self._scripts_missing = False
        users = list(itertools.islice(self.dirty, TURN_USERS))
        for user in users:
            del self.dirty[user]
        releases = list(self.releases.items())
        self.releases.clear()
        packed = [self._packed_turn(user) for user in users]
        packed += [
            pack(store.lease_command(keys, watcher.holder_id, "release")) for _, keys in releases
        ]
        try:
            replies = connection.execute_packed(b"".join(packed), 3 * len(users) + len(releases))
        except BaseException:
            for user in users:
                self.dirty[user] = None
            self.releases.update(releases)
            raise
        now = time.monotonic()
        for index, user in enumerate(users):
            drained, _, length = replies[3 * index : 3 * index + 3]
            self._drained(user, drained, length, now)
        # The hints read with the answers come after the drains that were answered: noted
        # now, they are not undone by what those drains decided.
        self._note(connection.take_invalidated())
        for (key, keys), answer in zip(releases, replies[3 * len(users) :], strict=True):
            if isinstance(answer, hiredis.ReplyError):
                if str(answer).startswith(NO_SCRIPT):
                    self._scripts_missing = True
                if key not in self.users:
                    self.releases[key] = keys  # tried again next turn
        if self._reconnect is not None:
            reason, self._reconnect = self._reconnect, None
            raise redis.ConnectionError(reason)

    def _packed_turn(self, user: WatchedMailbox) -> bytes:
        watcher = self.watcher
        if user.steal_from:
            claim = LeaseClaim(watcher.holder_id, "steal", user.steal_from)
            return watcher.pack_turn(user.keys, claim)
        if not user.packed:
            user.packed = watcher.pack_turn(user.keys, LeaseClaim(watcher.holder_id))
        return user.packed

    def _drained(self, user: WatchedMailbox, raw: object, length: object, now: float) -> None:
        """What one drain answered: hand the entries on and decide when to look again."""
        if isinstance(raw, hiredis.ReplyError):
            if not user.stopped:
                self._failed(user, raw, now)
            return
        result = counted(drain_result(raw), user.keys)
        if user.stopped:
            if result.holder is None and user.key not in self.users:
                self.releases[user.key] = user.keys  # it took the lease as it left
            return
        if result.holder is not None:
            user.packed = b""
            new_holder = result.holder != user.holder
            user.holding, user.holder, user.steal_from = False, result.holder, None
            self._schedule(user, now + next_ask_s(new_holder))
            return
        user.holding, user.holder, user.steal_from = True, None, None
        user.window_full = False
        if result.moved:
            user.on_moved(result)
        else:
            user.packed = b""  # idle: packed again when its mail flows
        if result.more and result.room > 0:
            self.dirty[user] = None  # a backlog: the next batch at once
        elif result.more:
            user.window_full = True
            self._schedule(user, now + WINDOW_RECHECK_S)
            return
        self._schedule(user, now + self.watcher.heal_s)
        if result.moved > 1:
            user.gather_until = now + GATHER_S
        if isinstance(length, int) and length > 0:
            self._drain_soon(user, now)  # mail came between the drain and the arming

    def _failed(self, user: WatchedMailbox, error: hiredis.ReplyError, now: float) -> None:
        kind = str(error).split(" ", 1)[0]
        if kind == NO_SCRIPT:
            self._scripts_missing = True
            self.dirty[user] = None
        elif kind == "READONLY":  # a Sentinel failover: this server is a replica now
            self._reconnect = f"the server turned into a replica: {error}"
            self.dirty[user] = None
        elif kind in WRONG_SERVER:
            self._schedule(user, now + RETRY_SOON_S)
            self.watcher.replace([user], self)
        elif kind in PASSING:
            self._schedule(user, now + RETRY_SOON_S)
        else:
            REDIS_ERRORS.labels("watcher").inc()
            log.warning("drain failed mailbox=%s error=%s", user.keys.mailbox, error)
            self._schedule(user, now + RETRY_LATER_S)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
