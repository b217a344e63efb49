"""The worker's one wake subscriber: hears every local user's wake channel and hands each
wake to its LocalUser.

A wake is a drain's news (the newest id, maybe the entries), a drainer's "free", or a
revocation (what each says: push/rules/wakes.py). The channels follow the registry of
local users: subscribed when a user's first tab arrives here, unsubscribed when its last
one goes. While some channels have no subscriber (a node is away) the listener tries again
with backoff, keeps serving the others, and has everyone look anyway (`on_gap`): a wake
published while nobody listened is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gevent.lock import Semaphore

from push.delivery.local_user import LocalUser
from push.delivery.retry import Retry
from push.rules.wakes import FREE, REVOKED, revoked_reason, wake_kind
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.wakes import WakeSubscriber

log = logging.getLogger(__name__)


class WakeListener:
    """The wake channels of the local users, and the greenlet that reads them (`run`)."""

    def __init__(
        self,
        wakes: WakeSubscriber,
        users: dict[str, LocalUser],
        heartbeat_s: float,
        on_gap: Callable[[], None],
    ) -> None:
        self.wakes = wakes
        #: The switchboard's registry (user id -> LocalUser), read, never written here.
        self.users = users
        self.heartbeat_s = heartbeat_s
        self.on_gap = on_gap
        self._by_wake: dict[bytes, LocalUser] = {}
        self._lock = Semaphore()

    def add(self, user_id: str, user: LocalUser) -> None:
        """`user` is new in the registry: hear its wakes."""
        self._by_wake[user.keys.wake.encode()] = user
        self.follow(user_id, user.keys.wake)

    def drop(self, user: LocalUser) -> None:
        """`user` left the registry: its wakes go to nobody (`follow` unsubscribes)."""
        del self._by_wake[user.keys.wake.encode()]

    def follow(self, user_id: str, wake: str) -> None:
        """Subscribe or unsubscribe `wake` to match whether the user is registered now.

        Deciding under the lock, from the registry as it is at that moment, keeps a
        quick leave-and-return of a user from ending unsubscribed."""
        with self._lock:
            try:
                if user_id in self.users:
                    self.wakes.subscribe(wake)
                else:
                    self.wakes.unsubscribe(wake)
            except REDIS_UNAVAILABLE as error:
                # The listener reconnects and re-subscribes what redis-py recorded.
                log.warning("redis error on subscription channel=%s error=%s", wake, error)

    def _subscribe_all(self) -> None:
        """(Re)subscribe every local user's wake channel."""
        self.wakes.refresh()
        with self._lock:
            self.wakes.resubscribe([user.keys.wake for user in self.users.values()])

    def run(self) -> None:
        """Hand each wake to its user. While some channels have no subscriber (a node is
        away), try again with backoff, and keep serving the wakes of the others."""
        wakes = self.wakes
        retry = Retry("subscriber", log)
        retry_at = 0.0
        while True:
            if not wakes.healthy and time.monotonic() >= retry_at:
                try:
                    self._subscribe_all()
                    retry.went_through()
                except REDIS_UNAVAILABLE as error:
                    retry.failed(error, "subscribing to wakes")
                    retry_at = time.monotonic() + retry.next_s()  # serving the others meanwhile
                self.on_gap()
            timeout = self.heartbeat_s
            if not wakes.healthy:
                timeout = min(timeout, max(retry_at - time.monotonic(), 0.01))
            try:
                message = wakes.get_message(timeout=timeout)
            except REDIS_UNAVAILABLE as error:
                retry.failed(error, "in wake subscriber")
                retry.wait()
                self.on_gap()
                continue
            if message is not None:
                self._hand_on(*message)

    def _hand_on(self, wake: bytes, data: bytes) -> None:
        user = self._by_wake.get(wake)
        if user is None:
            return
        kind = wake_kind(data)
        if kind == FREE:
            user.lease_freed()
            user.wake()
        elif kind == REVOKED:
            user.revoke(revoked_reason(data))
        else:
            try:
                user.heard(data)
            except Exception:
                # This greenlet carries every wake of the worker: it must not die.
                log.exception("unreadable wake channel=%s", wake.decode(errors="replace"))
                user.wake()
