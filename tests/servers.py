"""Real processes for the end-to-end tests: gunicorn with the gevent worker, a module's
own Redis, and scripts that must run in a process of their own (under gevent's
monkey-patching). The processes themselves are the shared harness's (tests/harness/),
which bench/ and chaos/ use too; the names tests import stay here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.harness.gunicorn import ROOT, START_TIMEOUT_S, Gunicorn, GunicornFailed, service_env
from tests.harness.redis_servers import RedisServer

__all__ = [
    "ROOT",
    "START_TIMEOUT_S",
    "Gunicorn",
    "GunicornFailed",
    "own_redis",
    "run_for_json",
    "service_env",
]


def run_for_json(args: list[str], timeout: float = 60, **env: str) -> dict:
    """Run `python *args` in a process of its own, this checkout importable and `env` added
    to this process's environment; return the JSON object its last line printed."""
    result = subprocess.run(
        [sys.executable, *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def own_redis(name: str) -> tuple[Any, Any]:
    """The fixtures `redis_server` and `r` of a module whose Redis is its own, for
    `redis_server, r = own_redis("acks")`: its service, started once for the module, keeps
    its workers' and users' keys there from test to test (a bystander, a lease), so unlike
    conftest's `r` this client empties nothing."""

    @pytest.fixture(scope="module")
    def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
        server = RedisServer(tmp_path_factory.mktemp(f"{name}-redis")).start()
        yield server
        server.stop()

    @pytest.fixture
    def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        yield client
        client.close()

    return redis_server, r
