"""Redis Cluster mode (PUSH_REDIS_CLUSTER=1): the cluster client, and clients of one node.

What differs from a single Redis is held here:

- The cluster client asks a seed node for the slot map when it is made, so it is
  made on first use: the app is created where the cluster may not answer yet
  (`gunicorn --check-config`, a start before Redis).
- Each node gets a pool of its own, so a worker's pooled connections are shared out
  over the primaries (PUSH_REDIS_POOL_SIZE in all, at least 2 a node) to keep Redis
  at about online users + a small constant per worker.
- A mover's BLMOVE holds a connection for seconds. Through the cluster client it
  would hold one of the node's pooled connections; instead it gets a connection of
  its own to the node that owns the mailbox's slot (`Store.mover_connection`, with
  `dedicated_connection_kwargs`, which a single Redis's movers use too).
- Sharded pub/sub (SSUBSCRIBE) is per node: the subscriber in wakes.py opens one
  connection to each primary through `node_client` too.
"""

from __future__ import annotations

import functools
import socket
import threading
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from push.model.redis_urls import parse_cluster_seeds

#: A node's pool is never smaller than this, however many primaries share the total.
MIN_POOL_PER_NODE = 2
#: Seconds of silence before a dedicated connection is probed, between probes, and how
#: many unanswered probes mean the node is gone (about 11 s in all).
KEEPALIVE_IDLE_S = 5
KEEPALIVE_INTERVAL_S = 2
KEEPALIVE_PROBES = 3


class ClusterOnFirstUse:
    """A RedisCluster made on first use, in the process that uses it.

    While no seed answers, every use raises redis.ConnectionError, which the service
    already treats as "Redis is away" (a stream gets 200, `retry:` and a close)."""

    def __init__(self, url: str, pool_size: int, options: dict[str, Any]) -> None:
        self._url = url
        self._pool_size = pool_size
        self._options = options
        self._client: RedisCluster | None = None
        # Greenlets of a worker's first requests all arrive here at once: one makes it.
        self._making = threading.Lock()

    def _connect(self) -> RedisCluster:
        if self._client is not None:
            return self._client
        with self._making:
            if self._client is not None:
                return self._client
            try:
                probe = self._make(max_connections=1)
                primaries = len(probe.get_primaries())
                _disconnect(probe)
                per_node = max(MIN_POOL_PER_NODE, -(-self._pool_size // max(primaries, 1)))
                self._client = self._make(max_connections=per_node)
            except RedisClusterException as error:
                raise redis.ConnectionError(f"no cluster seed answered: {error}") from error
        return self._client

    def _make(self, max_connections: int) -> RedisCluster:
        first, seeds = parse_cluster_seeds(self._url)
        return RedisCluster(
            url=first,
            startup_nodes=[ClusterNode(host, port) for host, port in seeds[1:]],
            max_connections=max_connections,
            **self._options,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connect(), name)

    def close(self) -> None:
        if self._client is not None:
            _disconnect(self._client)
            self._client = None


def _disconnect(cluster: RedisCluster) -> None:
    """Close every connection of a cluster client (close() leaves node pools open)."""
    nodes = list(cluster.get_nodes()) + list(cluster.nodes_manager.startup_nodes.values())
    for node in nodes:
        if node.redis_connection is not None:
            node.redis_connection.connection_pool.disconnect()


def cluster_client(
    url: str,
    *,
    max_connections: int,
    wait_for_connection_s: float | None,
    **options: Any,
) -> RedisCluster:
    """A cluster client whose pools hold at most `max_connections` over all primaries."""
    if wait_for_connection_s is not None:
        options["connection_pool_class"] = functools.partial(
            redis.BlockingConnectionPool, timeout=wait_for_connection_s
        )
    # A ClusterOnFirstUse stands in for the RedisCluster it makes.
    return ClusterOnFirstUse(url, max_connections, options)  # type: ignore[return-value]


def node_client(
    cluster: RedisCluster,
    node: ClusterNode,
    *,
    socket_timeout: float,
    client_name: str | None = None,
    reconnect: bool = True,
) -> redis.Redis:
    """A client with one connection of its own to `node`, with the cluster's credentials
    and TLS settings. Without `reconnect`, a broken connection raises at once instead of
    being opened again (a pub/sub connection must be re-subscribed by its owner)."""
    pool = cluster.get_redis_connection(node).connection_pool
    kwargs = dedicated_connection_kwargs(
        pool, socket_timeout=socket_timeout, client_name=client_name
    )
    if not reconnect:
        kwargs["retry"] = Retry(NoBackoff(), 0)
    return redis.Redis(
        connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=1, **kwargs
        )
    )


def dedicated_connection_kwargs(
    pool: redis.ConnectionPool,
    *,
    socket_timeout: float,
    client_name: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The settings of `pool`'s connections (address, credentials, TLS) for a connection
    held apart from it: its own socket timeout and name, TCP keepalive, no on-connect
    hook (a cluster node's pool runs READONLY there; a primary needs nothing), and no
    maintenance-notification handlers: they and the connection refer to each other, so
    each connection closed (one per user session, for movers) would stay in memory until
    a full garbage collection; a moved server is found by reconnecting anyway."""
    kwargs = dict(pool.connection_kwargs)
    kwargs.pop("redis_connect_func", None)
    kwargs.pop("maint_notifications_pool_handler", None)
    kwargs.update(
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        socket_keepalive_options=_keepalive_options(),
        **overrides,
    )
    if client_name:
        kwargs["client_name"] = client_name
    return kwargs


def _keepalive_options() -> dict[int, int]:
    """TCP keepalive that notices a node gone without closing its connections (a crashed
    or cut-off host) in about KEEPALIVE_IDLE_S + KEEPALIVE_PROBES x KEEPALIVE_INTERVAL_S: a
    subscriber or a blocked mover would otherwise wait on it for hours."""
    wanted = {
        "TCP_KEEPIDLE": KEEPALIVE_IDLE_S,
        "TCP_KEEPINTVL": KEEPALIVE_INTERVAL_S,
        "TCP_KEEPCNT": KEEPALIVE_PROBES,
    }
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


def primary_for(cluster: RedisCluster, key: str) -> ClusterNode:
    """The primary that owns `key`'s slot, by the client's current slot map."""
    return cluster.get_node_from_key(key)
