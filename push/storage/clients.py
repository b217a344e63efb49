"""Redis clients for every kind of REDIS_URL: redis://, rediss://, unix://, Sentinel, and
Redis Cluster (PUSH_REDIS_CLUSTER=1, see redis_cluster.py).

`redis+sentinel://host:port,host:port/service_name/db` asks the sentinels for the
service's current primary; after a failover every new connection goes to the new
one, and connections to the old one fail with ConnectionError, which the service
already retries.
"""

from __future__ import annotations

import sys
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import AskError, ClusterError, RedisClusterException, TryAgainError
from redis.sentinel import Sentinel, SentinelManagedConnection

from push.model.redis_urls import SENTINEL_SCHEME, SentinelUrl, parse_sentinel_url
from push.storage.cluster import cluster_client

#: Seconds to wait for a sentinel's answer about the primary's address.
SENTINEL_TIMEOUT_S = 1.0

#: What "Redis is away for now" looks like: a lost connection or a timeout, and on a
#: cluster also a slot without a primary, a failover in progress, a slot that moved
#: (MOVED/ASK: the next try goes to the new owner) or a migration (TRYAGAIN).
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterError,
    RedisClusterException,
    AskError,
    TryAgainError,
)


class _SentinelConnection(SentinelManagedConnection):
    """Drops the socket when a read is interrupted (a killed greenlet), as redis-py's plain
    connections do, so no half-read reply goes back into the pool."""

    def read_response(self, *args: Any, disconnect_on_error: bool = True, **kwargs: Any) -> Any:
        return super().read_response(*args, disconnect_on_error=disconnect_on_error, **kwargs)


_sentinels: dict[tuple[tuple[str, int], ...], Sentinel] = {}


def _sentinel(parsed: SentinelUrl) -> Sentinel:
    """One Sentinel manager per set of sentinels, shared by every client of the process."""
    if parsed.sentinels not in _sentinels:
        _sentinels[parsed.sentinels] = Sentinel(
            list(parsed.sentinels),
            sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S},
        )
    return _sentinels[parsed.sentinels]


def _cooperative_parser() -> type | None:
    """push.storage.parser's parser when gevent has patched this process. Without gevent
    loaded nothing can be patched, and a producer process (`from push import publish`)
    must not import gevent for the question: so it is imported here only when loaded."""
    if "gevent.monkey" not in sys.modules:
        return None
    from push.storage.parser import cooperative_parser

    return cooperative_parser()


def redis_client(
    url: str,
    *,
    max_connections: int,
    socket_timeout: float,
    connect_timeout: float,
    wait_for_connection_s: float | None = None,
    client_name: str | None = None,
    cluster: bool = False,
) -> redis.Redis:
    """A client with its own pool of at most `max_connections` (on a cluster: per node).

    With `wait_for_connection_s`, a caller finding the pool exhausted waits that long
    for a connection (a BlockingConnectionPool) instead of failing at once."""
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "socket_keepalive": True,
    }
    if client_name:
        options["client_name"] = client_name
    if cluster:
        return cluster_client(
            url,
            max_connections=max_connections,
            wait_for_connection_s=wait_for_connection_s,
            **{key: value for key, value in options.items() if key != "max_connections"},
        )
    # (Not on a cluster: RedisCluster passes no parser_class on to its nodes' pools.)
    if (parser_class := _cooperative_parser()) is not None:
        options["parser_class"] = parser_class
    if url.startswith(SENTINEL_SCHEME):
        parsed = parse_sentinel_url(url)
        return _sentinel(parsed).master_for(
            parsed.service,
            db=parsed.db,
            username=parsed.username,
            password=parsed.password,
            connection_class=_SentinelConnection,
            **options,
        )
    if wait_for_connection_s is not None:
        pool = redis.BlockingConnectionPool.from_url(url, timeout=wait_for_connection_s, **options)
    else:
        pool = redis.ConnectionPool.from_url(url, **options)
    return redis.Redis(connection_pool=pool)


def queue_script(pipe: redis.client.Pipeline, script: Script, keys: list, args: list) -> None:
    """Queue `script` on a pipeline.

    A cluster pipeline refuses EVALSHA (it could not load a missing script on the node
    it reaches, such as a promoted replica), so there the source itself is sent (EVAL);
    a plain pipeline loads what is missing and sends the hash."""
    if isinstance(pipe, redis.client.Pipeline):
        script(keys=keys, args=args, client=pipe)
    else:
        pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
