"""The work of the mailbox watcher's part on one Redis server (`NodeWork`): which users
to drain in the next turn, one turn's pipeline, and what its answers decide. The
connection and the greenlet that runs the turns are `NodeWatch`'s (node_watch.py).

Theory of operation: a turn drains the users named since the last one (by a hint, a
timer, a drain that left more) in one pipeline: per user its drain with a claim on the
lease, then `CLIENT CACHING yes` + `LLEN mailbox`, which arm its next hint; and it gives
back the leases of users that left. What each drain answered decides when the user is
drained again (push/rules/window.py, lease.py; an error reply: drain_errors.py; the
timers: timetable.py).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from typing import Protocol

import hiredis
import redis
from gevent.event import Event

from push.delivery.mover import counted
from push.delivery.watched_mailbox import WatchedMailbox
from push.metrics import REDIS_ERRORS
from push.model.entries import LeaseClaim, drain_result
from push.model.keys import UserKeys
from push.rules import drain_errors
from push.rules.drain_errors import NO_SCRIPT, RETRY_LATER_S, RETRY_SOON_S, after_error
from push.rules.lease import next_ask_s
from push.rules.timetable import Timetable
from push.rules.window import (
    AGAIN,
    GATHER_S,
    WAIT_FOR_ROOM,
    WINDOW_RECHECK_S,
    after_drain,
    dense,
    gathering,
)
from push.storage.store import Store
from push.storage.tracking import TrackedConnection, pack

log = logging.getLogger(__name__)

#: Users drained per pipeline: a worker with thousands of users that received mail at once
#: does not hold its loop, or Redis, for long on one round trip.
TURN_USERS = 500


class Placement(Protocol):
    """What a node asks of the watcher that placed its users (watcher.py)."""

    store: Store
    #: Every held user is drained at least this often, even without a hint.
    heal_s: float
    #: This worker's claim on the users' leases.
    holder_id: str

    def pack_turn(self, keys: UserKeys, claim: LeaseClaim) -> bytes: ...
    def replace(self, users: Iterable[WatchedMailbox], source: NodeWork) -> None: ...
    def refuse(self, reason: str) -> None: ...
    def node_done(self, node: NodeWork) -> None: ...


class NodeWork:
    """The users of one Redis server, what to do for them next, and one turn of it."""

    def __init__(self, watcher: Placement, name: str | None) -> None:
        self.watcher = watcher
        self.name = name
        self.users: dict[bytes, WatchedMailbox] = {}
        #: Users to drain in the next turn, in the order they were named.
        self.dirty: dict[WatchedMailbox, None] = {}
        #: Leases to give back: mailbox -> keys.
        self.releases: dict[bytes, UserKeys] = {}
        #: When each user is to be drained without a hint.
        self._timers: Timetable[WatchedMailbox] = Timetable()
        #: Set when there is work: the node's loop waits on it.
        self._wakeup = Event()
        self._scripts_missing = False
        #: Why the connection must be opened again (set while answers are handed on).
        self._reconnect: str | None = None

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
        self._timers.drop(user)
        user.node = None

    def drain_now(self, user: WatchedMailbox) -> None:
        self.dirty[user] = None
        self._wakeup.set()

    def _is_mine(self, user: WatchedMailbox) -> bool:
        return not user.stopped and user.node is self

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
        if gathering(user.gather_until, now):
            self._timers.at(user, user.gather_until)
        else:
            self.dirty[user] = None

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
            self._timers.at(user, now + next_ask_s(new_holder))
            return
        user.holding, user.holder, user.steal_from = True, None, None
        user.window_full = False
        if result.moved:
            user.on_moved(result)
        else:
            user.packed = b""  # idle: packed again when its mail flows
        verdict = after_drain(result.more, result.room)
        if verdict == AGAIN:
            self.dirty[user] = None  # a backlog: the next batch at once
        elif verdict == WAIT_FOR_ROOM:
            user.window_full = True
            self._timers.at(user, now + WINDOW_RECHECK_S)
            return
        self._timers.at(user, now + self.watcher.heal_s)
        if dense(result.moved):
            user.gather_until = now + GATHER_S
        if isinstance(length, int) and length > 0:
            self._drain_soon(user, now)  # mail came between the drain and the arming

    def _failed(self, user: WatchedMailbox, error: hiredis.ReplyError, now: float) -> None:
        verdict = after_error(str(error))
        if verdict == drain_errors.RELOAD_SCRIPTS:
            self._scripts_missing = True
            self.dirty[user] = None
        elif verdict == drain_errors.RECONNECT:  # a Sentinel failover: a replica now
            self._reconnect = f"the server turned into a replica: {error}"
            self.dirty[user] = None
        elif verdict == drain_errors.PLACE_AGAIN:
            self._timers.at(user, now + RETRY_SOON_S)
            self.watcher.replace([user], self)
        elif verdict == drain_errors.SOON:
            self._timers.at(user, now + RETRY_SOON_S)
        else:
            REDIS_ERRORS.labels("watcher").inc()
            log.warning("drain failed mailbox=%s error=%s", user.keys.mailbox, error)
            self._timers.at(user, now + RETRY_LATER_S)
