"""The presence registry: who is connected, counted across every worker and host.

Each connection holds a lease in the user's `{mailbox}:presence` sorted set
(connection id -> expiry). Its worker renews the leases of all its connections
every third of a lease, so a worker that dies stops counting within one
lease. Joining is one script that drops expired leases, checks the per-user
limit and adds the new one, atomically; time is Redis's own, the same for
every host.
"""

from __future__ import annotations

import itertools
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from push.model.keys import UserKeys
from push.storage.clients import queue_script
from push.storage.scripts import script

_sequence = itertools.count(1)


def new_connection_id() -> str:
    """Unique across hosts and workers: host, pid, and a counter."""
    return f"{worker_prefix()}{next(_sequence)}"


def worker_prefix() -> str:
    """What every connection id of this process starts with: the drain script publishes a
    wake only when a presence member of the user lacks it (another worker serves them)."""
    return f"{socket.gethostname()}:{os.getpid()}:"


@dataclass(frozen=True, slots=True)
class Joined:
    """What a join found: whether it was let in, and where the user's delivery stands."""

    joined: bool
    #: The user's connections now (with this one, if joined).
    count: int
    #: The user's delivered mark: the newest event written to any of its connections.
    mark: str | None
    #: Whether the history held nothing after the mark at the join.
    caught_up: bool
    #: When the user was revoked (ms), if the credential was issued before that: refused.
    revoked_at: int | None = None


@dataclass(frozen=True, slots=True)
class PresenceCount:
    connections: int
    last_seen: datetime | None

    @property
    def online(self) -> bool:
        return self.connections > 0


class Presence:
    def __init__(self, client: redis.Redis, *, lease_s: float, limit: int, ttl_s: int) -> None:
        self.lease_ms = int(lease_s * 1000)
        self.limit = limit
        self.ttl_s = ttl_s
        self._join = script(client, "presence_join.lua")
        self._renew = script(client, "presence_renew.lua")
        self._leave = script(client, "presence_leave.lua")
        self._count = script(client, "presence_count.lua")
        self._client = client

    @property
    def renew_every_s(self) -> float:
        return self.lease_ms / 3000

    def join(self, keys: UserKeys, connection_id: str, issued_at: float | None = None) -> Joined:
        """Join in one round trip; not joined when the user is at the limit, or when the
        credential was issued (`issued_at`, seconds) before the user was revoked."""
        issued_ms = -1 if issued_at is None else int(issued_at * 1000)
        joined, count, *rest = self._join(
            keys=[keys.presence, keys.state, keys.revoked],
            args=[connection_id, self.lease_ms, self.limit, self.ttl_s, issued_ms],
        )
        if joined == -1:
            return Joined(False, 0, None, False, revoked_at=int(count))
        mark, *caught_up = rest
        return Joined(bool(joined), int(count), mark.decode() if mark else None, caught_up == [1])

    def leave(self, keys: UserKeys, connection_id: str) -> None:
        self._leave(keys=[keys.presence, keys.state], args=[connection_id, self.ttl_s])

    def renew(self, leases: dict[UserKeys, list[str]]) -> None:
        """Renew these leases in one round trip."""
        if not leases:
            return
        with self._client.pipeline(transaction=False) as pipe:
            for keys, ids in leases.items():
                queue_script(
                    pipe,
                    self._renew,
                    [keys.presence, keys.state],
                    [self.lease_ms, self.ttl_s, *ids],
                )
            pipe.execute()

    def count(self, keys: UserKeys) -> PresenceCount:
        count, last_seen = self._count(keys=[keys.presence, keys.state])
        seen = datetime.fromtimestamp(int(last_seen) / 1000, UTC) if last_seen else None
        return PresenceCount(int(count), seen)
