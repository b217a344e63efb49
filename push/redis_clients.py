"""Redis clients for every kind of REDIS_URL: redis://, rediss://, unix:// and Sentinel.

`redis+sentinel://host:port,host:port/service_name/db` asks the sentinels for the
service's current primary; after a failover every new connection goes to the new
one, and connections to the old one fail with ConnectionError, which the service
already retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import redis
from redis.sentinel import Sentinel, SentinelManagedConnection

SENTINEL_SCHEME = "redis+sentinel://"
#: Seconds to wait for a sentinel's answer about the primary's address.
SENTINEL_TIMEOUT_S = 1.0


class _SentinelConnection(SentinelManagedConnection):
    """Drops the socket when a read is interrupted (a killed greenlet), as redis-py's plain
    connections do, so no half-read reply goes back into the pool."""

    def read_response(self, *args: Any, disconnect_on_error: bool = True, **kwargs: Any) -> Any:
        return super().read_response(*args, disconnect_on_error=disconnect_on_error, **kwargs)


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None


def parse_sentinel_url(url: str) -> SentinelUrl:
    """`redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]`."""
    rest = url.removeprefix(SENTINEL_SCHEME)
    hosts, _, path = rest.partition("/")
    username = password = None
    if "@" in hosts:
        credentials, hosts = hosts.rsplit("@", 1)
        user, _, secret = credentials.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    parts = [part for part in path.split("/") if part]
    if not hosts or not parts or len(parts) > 2:
        raise ValueError("a sentinel URL is redis+sentinel://host:port[,host:port]/service[/db]")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"sentinel address {host!r} is not host:port")
        sentinels.append((name, int(port)))
    db = int(parts[1]) if len(parts) == 2 else 0
    return SentinelUrl(tuple(sentinels), parts[0], db, username, password)


_sentinels: dict[tuple[tuple[str, int], ...], Sentinel] = {}


def _sentinel(parsed: SentinelUrl) -> Sentinel:
    """One Sentinel manager per set of sentinels, shared by every client of the process."""
    if parsed.sentinels not in _sentinels:
        _sentinels[parsed.sentinels] = Sentinel(
            list(parsed.sentinels),
            sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S},
        )
    return _sentinels[parsed.sentinels]


def redis_client(
    url: str,
    *,
    max_connections: int,
    socket_timeout: float,
    connect_timeout: float,
    wait_for_connection_s: float | None = None,
    client_name: str | None = None,
) -> redis.Redis:
    """A client with its own pool of at most `max_connections`.

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
