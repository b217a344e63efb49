"""The mailbox watcher: one per worker, it learns which local users' mailboxes received
mail and drains them, with no Redis connection and no greenlet per user.

Theory of operation:

- One tracked connection per Redis server (per primary on a cluster; tracking.py) and a
  greenlet for it (`NodeWatch`, node_watch.py; its turns: node_work.py). After each drain
  of a user the same pipeline sends `CLIENT CACHING yes` + `LLEN mailbox`: that arms one
  invalidation, so the next LPUSH by any producer tells this connection the mailbox's
  name. The LLEN's answer closes the race: mail that came between the drain and the
  arming is seen there.
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
  waits (push/rules/lease.py) and claims again when the holder says "free", when the
  switchboard finds the holder's worker dead (then it steals), or after a while.
- Flow control is the drain script's: a drain that found the window full is tried again
  when the user's delivered mark moves (`room_freed`) or after a while (the rules:
  push/rules/window.py).
- Every decision about a user is "drain it at time t": one timer per user in a heap
  (push/rules/timetable.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from push.delivery.mover import drain_limits
from push.delivery.node_watch import UNPLACED, NodeWatch
from push.delivery.node_work import NodeWork
from push.delivery.watched_mailbox import WatchedMailbox
from push.model.entries import DrainResult, LeaseClaim
from push.model.keys import UserKeys
from push.model.settings import DeliverySettings
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.presence import worker_prefix
from push.storage.store import Store
from push.storage.tracking import pack

log = logging.getLogger(__name__)

#: Every held user is drained (and its mailbox armed again) at least every this many
#: heartbeats, even without a hint.
HEAL_HEARTBEATS = 4
#: What arms the next command's key for one invalidation (tracking.py).
ARM = pack(("CLIENT", "CACHING", "yes"))


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
            name = None if not self.store.cluster else UNPLACED
        self._node(name).add(user)

    def replace(self, users: Iterable[WatchedMailbox], source: NodeWork) -> None:
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

    def _move_to_owners(self, users: list[WatchedMailbox], source: NodeWork) -> None:
        for user in users:
            if user.stopped:
                continue
            try:
                name = self.store.node_of(user.keys.mailbox)
            except REDIS_UNAVAILABLE:
                name = UNPLACED
            if name != source.name:
                source.forget(user)
                self._node(name).add(user)

    def refuse(self, reason: str) -> None:
        """A server refused to track keys: no watcher on this worker, blocking movers."""
        if self.refused is None:
            self.refused = reason
            self.on_refused(reason)

    def node_done(self, node: NodeWork) -> None:
        if self.nodes.get(node.name) is node:
            del self.nodes[node.name]


def _nobody(result: DrainResult) -> None:
    """A stopped user's drains report to no one."""


def _nothing() -> None:
    """A stopped user has no pump to wake."""
