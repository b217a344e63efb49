"""Real processes for the end-to-end tests: gunicorn with the gevent worker, and scripts
that must run in a process of their own (under gevent's monkey-patching)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from clients import wait_until

from push.storage.server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
#: Seconds gunicorn gets to start answering.
START_TIMEOUT_S = 30.0


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


def service_env(redis_url: str, **settings: str) -> dict[str, str]:
    """The environment of a service process: this one's, with the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSH_")}
    env.update(REDIS_URL=redis_url, PYTHONUNBUFFERED="1", **settings)
    return env


class Gunicorn:
    """`gunicorn -c gunicorn.conf.py wsgi:app` on a free loopback port."""

    def __init__(
        self,
        log_path: Path,
        env: dict[str, str],
        workers: int = 2,
        extra_args: list[str] | None = None,
    ) -> None:
        self.extra_args = extra_args or []
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = env
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Gunicorn:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "-b",
            f"127.0.0.1:{self.port}",
            "-w",
            str(self.workers),
            *self.extra_args,
            "wsgi:app",
        ]
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._answers, timeout=START_TIMEOUT_S, what=f"gunicorn on {self.port}")
        # Every worker, not just the first, has loaded the app and accepts connections.
        wait_until(
            lambda: self.log()[self._log_start :].count("Worker ready") >= self.workers,
            timeout=START_TIMEOUT_S,
            what="every worker to be ready",
        )
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited; log:\n{self.log()}")
        try:
            with urllib.request.urlopen(self.base_url + "/static/demo.css", timeout=1):
                return True
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[str]:
        """The pids of the master's children (its workers), from /proc."""
        assert self.process is not None
        children = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                children.add(stat.parent.name)
        return children

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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
