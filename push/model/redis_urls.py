"""REDIS_URL's forms that redis-py does not parse itself: Sentinel URLs and a cluster's
seed list. Pure parsing, so the settings can check a URL without a Redis client."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

SENTINEL_SCHEME = "redis+sentinel://"


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
    sentinels = parse_host_ports(hosts, "sentinel address")
    db = int(parts[1]) if len(parts) == 2 else 0
    return SentinelUrl(tuple(sentinels), parts[0], db, username, password)


def parse_host_ports(hosts: str, what: str) -> list[tuple[str, int]]:
    """`"h1:p1,h2:p2"` -> `[("h1", p1), ("h2", p2)]`; `what` names them in the error."""
    addresses = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"{what} {host!r} is not host:port")
        addresses.append((name, int(port)))
    return addresses


def parse_cluster_seeds(url: str) -> tuple[str, list[tuple[str, int]]]:
    """`redis://[user:pw@]h1:p1,h2:p2[/0]` -> (the URL with the first seed only, all seeds).

    Any one seed that answers is enough: the client learns the rest from it."""
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    seeds = parse_host_ports(hosts, "cluster seed")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("Redis Cluster has only database 0")
    first = f"{credentials}@{hosts.split(',')[0]}" if credentials else hosts.split(",")[0]
    return urlunsplit(parts._replace(netloc=first, path="")), seeds
