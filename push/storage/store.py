"""The commands of the delivery path: drains, mover leases, marks, acks, receipts, reads.

`Store` is the service's view of Redis: the connections it is built on (the pool, and
the connections held apart for movers, the watcher and wakes) are in connections.py;
the marks' one-round-trip flush in mark_batches.py. On a cluster every script touches
keys of one slot only (they share the mailbox's tag), so each runs on the user's node.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError

from push.model.entries import (
    DrainLimits,
    DrainResult,
    Entry,
    LeaseClaim,
    Mark,
    Receipts,
    drain_result,
    history_entry,
)
from push.model.keys import UserKeys, worker_alive_key
from push.storage.connections import RedisConnections
from push.storage.mark_batches import send_marks
from push.storage.scripts import script

#: Payload bytes a drain's wake may carry to the other workers' connections; a bigger
#: batch's wake carries its newest id only, and they read the history.
WAKE_CARRY_BYTES = 16_384
#: A mover lease outlives its worker by at most this long even if nobody checks the
#: worker's liveness (the lease is taken over much sooner: see push/rules/lease.py).
MOVER_LEASE_SAFETY_MS = 3_600_000


class Store(RedisConnections):
    """The service's view of Redis: scripts, history reads, marks, and (from
    RedisConnections) the pooled client and the connections held apart."""

    def __init__(self, url: str, *, pool_size: int, block_s: float, cluster: bool = False) -> None:
        super().__init__(url, pool_size=pool_size, block_s=block_s, cluster=cluster)
        self._drain = script(self.redis, "drain.lua")
        self._mark = script(self.redis, "mark_delivered.lua")
        self._acknowledge = script(self.redis, "acknowledge.lua")
        self._lease = script(self.redis, "mover_lease.lua")

    def drain(
        self,
        keys: UserKeys,
        limits: DrainLimits,
        claim: LeaseClaim | None = None,
        worker_prefix: str = "",
    ) -> DrainResult:
        """Run the drain script once (see lua/drain.lua): with `claim`, only if the
        claimant holds (or takes) the user's lease; with `worker_prefix`, no wake is
        published unless a connection of the user lives on another worker."""
        args = self.drain_args(keys, limits, claim, worker_prefix)
        return drain_result(self._drain(keys=keys.drain_keys, args=args))

    def drain_command(
        self,
        keys: UserKeys,
        limits: DrainLimits,
        claim: LeaseClaim | None = None,
        worker_prefix: str = "",
    ) -> tuple:
        """The drain as one command to pipeline on a connection of the user's node."""
        args = self.drain_args(keys, limits, claim, worker_prefix)
        return ("EVALSHA", self._drain.sha, len(keys.drain_keys), *keys.drain_keys, *args)

    def lease_command(self, keys: UserKeys, holder: str, op: str) -> tuple:
        """One operation of lua/mover_lease.lua ("check", "release") as one command."""
        args = self._lease_args(keys, holder, op)
        return ("EVALSHA", self._lease.sha, 1, keys.mover, *args)

    def script_sources(self) -> dict[str, bytes]:
        """The scripts a pipelined command may name by hash, to load where one is missing."""
        return {s.sha: s.script for s in (self._drain, self._lease)}

    def wait_for_mail(self, connection: AbstractConnection, keys: UserKeys) -> bool:
        """Block until the mailbox has a message, moving it to pending; False on timeout.

        A connection error is raised as it comes (the mover backs off and opens another).
        `connect()` first: a Sentinel connection finds the current primary only there."""
        connection.connect()
        connection.send_command("BLMOVE", keys.mailbox, keys.pending, "RIGHT", "LEFT", self.block_s)
        return connection.read_response() is not None

    def wait_and_drain(
        self,
        connection: AbstractConnection,
        keys: UserKeys,
        limits: DrainLimits,
        worker_prefix: str = "",
    ) -> DrainResult:
        """Block until the mailbox has a message (BLMOVE moves it to pending), then drain.

        The drain is sent on the same connection right behind the BLMOVE, so Redis runs it
        the moment the BLMOVE returns: no round trip between a message's arrival and its
        event id. A BLMOVE that times out is followed by a drain that finds nothing.
        `connect()` first: a Sentinel connection finds the current primary only there.
        An error is raised as it comes (the mover backs off and opens another connection)."""
        args = self.drain_args(keys, limits, worker_prefix=worker_prefix)
        connection.connect()
        connection.send_packed_command(
            connection.pack_commands(
                [
                    ("BLMOVE", keys.mailbox, keys.pending, "RIGHT", "LEFT", self.block_s),
                    ("EVALSHA", self._drain.sha, len(keys.drain_keys), *keys.drain_keys, *args),
                ]
            )
        )
        try:
            connection.read_response()
        except BaseException:
            connection.disconnect()  # the drain's answer is still on its way
            raise
        try:
            raw = connection.read_response()
        except NoScriptError:
            # A Redis that restarted (or a promoted replica) has no scripts yet: the
            # pool's call loads it, and takes what the BLMOVE moved.
            return self.drain(keys, limits, worker_prefix=worker_prefix)
        return drain_result(raw)

    def drain_args(
        self,
        keys: UserKeys,
        limits: DrainLimits,
        claim: LeaseClaim | None = None,
        worker_prefix: str = "",
    ) -> list:
        return [
            limits.window,
            limits.batch,
            limits.history_max,
            limits.ttl_s,
            limits.max_message_bytes,
            keys.wake,
            self.publish_command,
            WAKE_CARRY_BYTES,
            claim.holder if claim else "",
            claim.op if claim else "",
            claim.dead_holder if claim else "",
            MOVER_LEASE_SAFETY_MS,
            worker_prefix,
            limits.mailbox_max,
            limits.mailbox_expiry_ms or "",
            limits.dead_letter_bytes or "",
            limits.dead_letter_ttl_s or "",
            limits.dead_letter_count or "",
        ]

    def mark_delivered(self, keys: UserKeys, entry: Entry, ttl_s: int) -> bool:
        return bool(self._mark(keys=[keys.state], args=[entry.id, entry.n, ttl_s]))

    def mark_delivered_many(
        self,
        marks: list[tuple[UserKeys, Entry]],
        ttl_s: int,
        acks: Sequence[tuple[UserKeys, str]] = (),
    ) -> None:
        """Several users' delivered marks, then their acks, in one round trip (see
        mark_delivered, acknowledge, and push/storage/mark_batches.py)."""
        send_marks(self.redis, self.cluster, self._mark, self._acknowledge, marks, ttl_s, acks)

    def mover_lease(
        self, keys: UserKeys, mover_id: str, op: str, dead_holder: str = ""
    ) -> bool | str:
        """Run one operation of lua/mover_lease.lua: True when it went our way, or
        (acquire) the id of the mover that holds the lease. A release publishes "free"."""
        answer = self._lease(
            keys=[keys.mover], args=self._lease_args(keys, mover_id, op, dead_holder)
        )
        return True if answer == 1 else (answer.decode() if isinstance(answer, bytes) else False)

    def _lease_args(self, keys: UserKeys, mover_id: str, op: str, dead_holder: str = "") -> list:
        return [mover_id, MOVER_LEASE_SAFETY_MS, op, dead_holder, keys.wake, self.publish_command]

    def mark_worker_alive(self, worker_id: str, ttl_s: float) -> None:
        self.redis.set(worker_alive_key(worker_id), 1, px=int(ttl_s * 1000))

    def worker_alive(self, worker_id: str) -> bool:
        return bool(self.redis.exists(worker_alive_key(worker_id)))

    def acknowledge(self, keys: UserKeys, event_id: str, ttl_s: int) -> int:
        """A client showed `event_id` (each part at most 2^64-1, no leading zeros): advance
        the user's acknowledged id. 1 if it moved, 0 if it was at or past `event_id`
        already, -1 if `event_id` is past everything the user was given (lua/
        acknowledge.lua)."""
        return int(self._acknowledge(keys=[keys.state, keys.history], args=[event_id, ttl_s]))

    def receipts(self, keys: UserKeys) -> Receipts:
        """What a producer may ask: waiting, delivered, acknowledged, unacknowledged."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(keys.mailbox)
            pipe.llen(keys.pending)
            pipe.hmget(
                keys.state,
                "seq",
                "delivered_id",
                "delivered_at",
                "acked_id",
                "acked_at",
                "acked_n",
            )
            waiting, pending, state = pipe.execute()
        seq, delivered_id, delivered_at, acked_id, acked_at, acked_n = (
            value.decode() if value is not None else None for value in state
        )
        return Receipts(
            waiting=waiting + pending,
            delivered=Mark(delivered_id, int(delivered_at)) if delivered_id else None,
            acknowledged=Mark(acked_id, int(acked_at)) if acked_id else None,
            unacknowledged=max(0, int(seq or 0) - int(acked_n or 0)),
        )

    def revoked_since(self, keys: UserKeys) -> float | None:
        """When the user was last revoked (seconds since the epoch), if it is remembered."""
        value = self.redis.get(keys.revoked)
        return int(value) / 1000 if value else None

    def delivered_mark(self, keys: UserKeys) -> str | None:
        """The newest event id written to any connection of this user, if any."""
        value = self.redis.hget(keys.state, "delivered_id")
        return value.decode() if value else None

    def read_after(self, keys: UserKeys, cursor: str, count: int) -> tuple[list[Entry], str | None]:
        """History entries after `cursor`, and the newest id trimmed away (if any)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.xrange(keys.history, f"({cursor}", "+", count=count)
            pipe.hget(keys.state, "trimmed")
            raw_entries, trimmed = pipe.execute()
        entries = []
        for raw_id, fields in raw_entries:
            entries.append(history_entry(raw_id.decode(), int(fields[b"n"]), fields[b"d"].decode()))
        return entries, trimmed.decode() if trimmed else None

    def push(self, keys: UserKeys, payload: str | bytes) -> int:
        """The producers' contract: LPUSH to the mailbox. Returns the mailbox length."""
        return self.redis.lpush(keys.mailbox, payload)
