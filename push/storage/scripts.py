"""The Lua scripts of push/storage/lua/, as redis-py Script objects (redis only: producers use
them without the service)."""

from __future__ import annotations

from pathlib import Path

import redis
from redis.commands.core import Script


def load_script(name: str) -> str:
    """The source of a Lua script in push/storage/lua/."""
    return (Path(__file__).parent / "lua" / name).read_text()


def script(client: redis.Redis, name: str) -> Script:
    """A script of push/storage/lua/ for `client`, made without a round trip (a cluster
    client is made on first use, and making the app must not reach Redis)."""
    return Script(client, load_script(name).encode())
