"""The Lua scripts of push/scripts/, as redis-py Script objects (redis only: producers use
them without the service)."""

from __future__ import annotations

from pathlib import Path

import redis
from redis.commands.core import Script


def load_script(name: str) -> str:
    """The source of a Lua script in push/scripts/."""
    return (Path(__file__).parent / "scripts" / name).read_text()


def script(client: redis.Redis, name: str) -> Script:
    """A script of push/scripts/ for `client`, made without a round trip (a cluster
    client is made on first use, and making the app must not reach Redis)."""
    return Script(client, load_script(name).encode())
