"""Redis connections, and the commands of the delivery path.

Two kinds of connection: a bounded pool for short commands (scripts, reads,
marks), and one dedicated connection per mover for the blocking BLMOVE. The
dedicated ones have a socket timeout longer than the block, so redis-py never
mistakes a quiet mailbox for a dead server, and they are closed when the mover
stops, so Redis holds about one connection per active user.

On a cluster (`cluster=True`) the same holds per node: the blocking connection
goes to the primary that owns the mailbox's slot, wakes are sharded (SPUBLISH),
and every script touches keys of one slot only (they share the mailbox's tag).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import redis
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisClusterException, ResponseError

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
from push.storage.clients import queue_script, redis_client
from push.storage.cluster import dedicated_connection_kwargs, node_client, primary_for
from push.storage.scripts import script
from push.storage.tracking import TrackedConnection, pack
from push.storage.wakes import ChannelWakes, ShardedWakes, WakeSubscriber

log = logging.getLogger(__name__)

#: Seconds a short command may take before the connection counts as broken.
COMMAND_TIMEOUT_S = 5.0
#: Seconds to open a TCP connection to Redis.
CONNECT_TIMEOUT_S = 2.0
#: Extra seconds a blocked connection waits for the reply past the block itself.
BLOCK_MARGIN_S = 10.0
#: Bytes a mover's connection reads at a time. redis-py keeps a read buffer of this size
#: per connection for its life (32 KB by default), one per online user; what comes on it
#: is a BLMOVE's reply and, when mail is sparse, one small drain's: a longer reply is
#: read in several goes.
MOVER_READ_SIZE = 512
#: Payload bytes a drain's wake may carry to the other workers' connections; a bigger
#: batch's wake carries its newest id only, and they read the history.
WAKE_CARRY_BYTES = 16_384
#: A mover lease outlives its worker by at most this long even if nobody checks the
#: worker's liveness (the lease is taken over much sooner: see mailbox.py).
MOVER_LEASE_SAFETY_MS = 3_600_000


def _raise_for_marks(failures: Sequence[tuple[int, Exception]], mark_count: int) -> None:
    """A batch's error answers: a mark's is raised (its flush is retried); an ack's is
    logged and dropped, so one bad ack can hold back neither the marks nor flow control."""
    for index, error in failures:
        if index < mark_count:
            raise error
    for _, error in failures:
        log.warning("ack not recorded error=%s", error)


class Store:
    """The service's view of Redis: scripts, history reads, marks, blocking clients."""

    def __init__(self, url: str, *, pool_size: int, block_s: float, cluster: bool = False) -> None:
        self.url = url
        self.block_s = block_s
        self.cluster = cluster
        self.redis = redis_client(
            url,
            max_connections=pool_size,
            socket_timeout=COMMAND_TIMEOUT_S,
            connect_timeout=CONNECT_TIMEOUT_S,
            wait_for_connection_s=COMMAND_TIMEOUT_S,
            cluster=cluster,
        )
        #: How wakes are published: sharded on a cluster, so only the owner's shard hears.
        self.publish_command = "SPUBLISH" if cluster else "PUBLISH"
        self._drain = script(self.redis, "drain.lua")
        self._mark = script(self.redis, "mark_delivered.lua")
        self._acknowledge = script(self.redis, "acknowledge.lua")
        self._lease = script(self.redis, "mover_lease.lua")

    def mover_connection(self, name: str) -> AbstractConnection:
        """A connection of its own for one mover's BLMOVE, to the primary that owns `name`.

        A bare connection rather than a client: a redis.Redis carries its own table of
        reply callbacks (about 13 KB), and every online user has a mover. It opens on its
        first command without CLIENT SETINFO (two round trips per user saved), reads
        MOVER_READ_SIZE bytes at a time, and is closed with `disconnect()`."""
        if self.cluster:
            node = primary_for(self.redis, name)
            pool = self.redis.get_redis_connection(node).connection_pool
        else:
            pool = self.redis.connection_pool
        kwargs = dedicated_connection_kwargs(
            pool,
            socket_timeout=self.block_s + BLOCK_MARGIN_S,
            client_name=f"push:mover:{os.getpid()}:{name}",
            socket_read_size=MOVER_READ_SIZE,
            driver_info=None,
        )
        return pool.connection_class(**kwargs)

    def tracked_connection(self, node_name: str | None = None) -> TrackedConnection:
        """A connection of its own for the mailbox watcher (push/delivery/watcher.py), to the one
        Redis, or on a cluster to the primary named `node_name` (`host:port`): RESP3, with
        tracking turned on when it is opened."""
        return TrackedConnection(self._resp3_connection(f"push:watch:{os.getpid()}", node_name))

    def _resp3_connection(
        self, client_name: str, node_name: str | None = None
    ) -> AbstractConnection:
        """A connection held apart from the pool (its address, credentials and TLS), to
        the one Redis or to the cluster primary `node_name`, speaking RESP3."""
        if self.cluster:
            node = self.redis.get_node(node_name=node_name)
            if node is None:
                raise redis.ConnectionError(f"the cluster has no node {node_name}")
            pool = self.redis.get_redis_connection(node).connection_pool
        else:
            pool = self.redis.connection_pool
        kwargs = dedicated_connection_kwargs(
            pool, socket_timeout=COMMAND_TIMEOUT_S, client_name=client_name, protocol=3
        )
        return pool.connection_class(**kwargs)

    def node_of(self, key: str) -> str | None:
        """The name of the cluster primary that owns `key` (None on a single Redis)."""
        return primary_for(self.redis, key).name if self.cluster else None

    def refresh_slot_map(self) -> None:
        """Ask the cluster for its slot map afresh (a node failed, or a slot moved)."""
        if self.cluster:
            try:
                self.redis.nodes_manager.initialize()
            except RedisClusterException as error:
                raise redis.ConnectionError(f"the cluster's slot map: {error}") from error

    def wake_subscriber(self) -> WakeSubscriber:
        if self.cluster:
            return ShardedWakes(self.redis, socket_timeout=COMMAND_TIMEOUT_S)
        return ChannelWakes(lambda: self._resp3_connection(f"push:wakes:{os.getpid()}"))

    def user_wakes(self, keys: UserKeys) -> redis.client.PubSub:
        """A subscription to one user's wakes, read with get_message (no greenlets: the
        CLI runs without gevent)."""
        if self.cluster:
            client = node_client(
                self.redis, primary_for(self.redis, keys.wake), socket_timeout=COMMAND_TIMEOUT_S
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.ssubscribe(keys.wake)
        else:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(keys.wake)
        return pubsub

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
        mark_delivered, acknowledge): an ack goes after its user's mark, so an entry
        written and acknowledged before the same flush is within the mark.

        On one Redis the commands are packed here and sent on a pooled connection as they
        are: a redis-py pipeline of scripts asks SCRIPT EXISTS first (a round trip more)
        and packs each command in Python. A mark and an ack are idempotent (they only move
        forward), so after a NOSCRIPT (Redis restarted) the whole batch goes again once
        both scripts are loaded."""
        if self.cluster:
            with self.redis.pipeline(transaction=False) as pipe:
                for keys, entry in marks:
                    queue_script(pipe, self._mark, [keys.state], [entry.id, entry.n, ttl_s])
                for keys, event_id in acks:
                    queue_script(
                        pipe, self._acknowledge, [keys.state, keys.history], [event_id, ttl_s]
                    )
                answers = pipe.execute(raise_on_error=False)
            _raise_for_marks(
                [(i, a) for i, a in enumerate(answers) if isinstance(a, Exception)], len(marks)
            )
            return
        mark, acknowledge = self._mark.sha, self._acknowledge.sha
        data = b"".join(
            [
                *(
                    pack(("EVALSHA", mark, 1, keys.state, entry.id, entry.n, ttl_s))
                    for keys, entry in marks
                ),
                *(
                    pack(("EVALSHA", acknowledge, 2, keys.state, keys.history, event_id, ttl_s))
                    for keys, event_id in acks
                ),
            ]
        )
        count = len(marks) + len(acks)
        missing, failures = self._send_packed(data, count)
        if missing:
            self.redis.script_load(self._mark.script)
            self.redis.script_load(self._acknowledge.script)
            missing, failures = self._send_packed(data, count)
        _raise_for_marks(failures, len(marks))

    def _send_packed(self, data: bytes, count: int) -> tuple[bool, list[tuple[int, ResponseError]]]:
        """Send `count` packed commands on a pooled connection and read their answers:
        (a script was missing, the other error answers with their command's index)."""
        pool = self.redis.connection_pool
        connection = pool.get_connection()
        missing, failures = False, []
        try:
            connection.send_packed_command([data])
            for index in range(count):
                try:
                    connection.read_response()
                except NoScriptError:
                    missing = True
                except ResponseError as error:
                    failures.append((index, error))
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        return missing, failures

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

    def mark_worker_gone(self, worker_id: str) -> None:
        self.redis.delete(worker_alive_key(worker_id))

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

    def close(self) -> None:
        if self.cluster:
            self.redis.close()
        else:
            self.redis.connection_pool.disconnect()
