"""The Redis connections of the service: a bounded pool, and connections held apart.

Two kinds of connection: a bounded pool for short commands (scripts, reads,
marks), and connections of their own for what holds one for long: a mover's blocking
BLMOVE, the mailbox watcher's tracked connection, the wake subscribers. A mover's
connection has a socket timeout longer than the block, so redis-py never mistakes a
quiet mailbox for a dead server, and it is closed when the mover stops, so Redis holds
about one connection per active user.

On a cluster (`cluster=True`) the same holds per node: a connection held apart goes to
the primary that owns its key's slot (or the node named), and wakes are sharded
(SPUBLISH). The commands sent on these connections are in store.py.
"""

from __future__ import annotations

import os

import redis
from redis.connection import AbstractConnection
from redis.exceptions import RedisClusterException

from push.model.keys import UserKeys
from push.storage.clients import redis_client
from push.storage.cluster import dedicated_connection_kwargs, node_client, primary_for
from push.storage.tracking import TrackedConnection
from push.storage.wakes import ChannelWakes, ShardedWakes, WakeSubscriber

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


class RedisConnections:
    """The pooled client (`redis`), and the connections held apart from its pool."""

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

    def close(self) -> None:
        if self.cluster:
            self.redis.close()
        else:
            self.redis.connection_pool.disconnect()
