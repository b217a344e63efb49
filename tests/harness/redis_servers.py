"""A private redis-server on a free loopback port, for tests, benchmarks and chaos runs.

The server itself is push's own `RedisServer` (the one `python app.py` starts when no
REDIS_URL is set): this is the only module of the harness that imports from push/, so a
move there changes one line here.
"""

from __future__ import annotations

from pathlib import Path

from push.storage.server import RedisServer, find_server_binary

__all__ = ["RedisServer", "find_server_binary", "start_redis"]


def start_redis(
    data_dir: Path,
    *,
    maxclients: int | None = None,
    appendfsync: str | None = None,
) -> RedisServer:
    """A started private Redis keeping its files in `data_dir`; with `appendfsync`
    (always, everysec) an append-only file, with `maxclients` more clients than the
    default 10,000."""
    extra: tuple[str, ...] = ()
    if appendfsync is not None:
        extra += ("--appendfsync", appendfsync)
    if maxclients is not None:
        extra += ("--maxclients", str(maxclients))
    return RedisServer(data_dir, appendonly=appendfsync is not None, extra_args=extra).start()
