"""A system under test: gunicorn with 2 gevent workers serving push (`wsgi:app`, the
repo's gunicorn.conf.py) or the Flask-SSE peer (`peer_app:app`, peer_gunicorn.conf.py),
on the shared harness's Gunicorn. Its workers start with the open-file limit raised,
and are stopped with SIGQUIT (gunicorn's quick shutdown: the streams are closed by then).
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import psutil
from plans import WORKER_CONNECTIONS, WORKERS

from tests.harness.gunicorn import START_TIMEOUT_S, WORKER_READY, Gunicorn, service_env
from tests.harness.limits import raise_nofile

BENCH = Path(__file__).resolve().parent


class Server(Gunicorn):
    """push or the Flask-SSE peer, its workers as psutil processes once ready."""

    def __init__(
        self,
        system: str,
        redis_url: str,
        log_dir: Path,
        label: str,
        watch: str = "notify",
        worker_connections: int = WORKER_CONNECTIONS,
    ) -> None:
        env = service_env(redis_url, PUSH_WORKER_CONNECTIONS=str(worker_connections))
        if system == "push":
            env.update(PUSH_DEMO="1", PUSH_MAILBOX_WATCH=watch)
            served = {"app": ["wsgi:app"], "ready_path": "/static/demo.css"}
            served["ready_line"] = WORKER_READY
        else:
            served = {
                "config": str(BENCH / "peer_gunicorn.conf.py"),
                "app": ["--pythonpath", str(BENCH), "peer_app:app"],
                "ready_path": "/ping",
                "ready_line": None,
            }
        super().__init__(
            log_dir / f"{label}.log",
            env,
            WORKERS,
            stop_signal=signal.SIGQUIT,
            stop_timeout=15.0,
            preexec_fn=raise_nofile,
            **served,
        )
        self.system = system
        self.watch = watch
        self.worker_connections = worker_connections
        self.redis_url = redis_url
        self.worker_processes: list[psutil.Process] = []

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> Server:
        """Wait until both workers run and the server answers (GunicornFailed if not)."""
        super().wait_ready(timeout)
        assert self.process is not None
        self.worker_processes = psutil.Process(self.process.pid).children()
        return self

    def rss(self) -> int:
        total = 0
        for worker in self.worker_processes:
            with contextlib.suppress(psutil.Error):
                total += worker.memory_info().rss
        return total

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        super().stop()
        for worker in self.worker_processes:
            with contextlib.suppress(psutil.Error):
                worker.kill()

    @property
    def stream_path(self) -> str:
        return (
            "/stream?user_id={user_id}"
            if self.system == "push"
            else "/stream?channel=user_{user_id}"
        )
