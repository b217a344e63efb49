"""A WSGI app under real gunicorn on a free loopback port: push's `wsgi:app` with the
repo's gunicorn.conf.py by default, or any other app and config (the benchmarks' Flask-SSE
peer, the chaos runs' stats-writing config).

Ready means: the listener answers `ready_path` with 200, and every worker has loaded the
app (it logged `ready_line`; for a config that logs no such line, the master has as many
children as workers).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.harness.processes import children, free_port, stop_process
from tests.harness.waits import poll

ROOT = Path(__file__).resolve().parents[2]
#: Seconds gunicorn gets to start answering.
START_TIMEOUT_S = 30.0
#: What the repo's gunicorn.conf.py logs once a worker has loaded the app.
WORKER_READY = "Worker ready"


class GunicornFailed(RuntimeError):
    """gunicorn exited, or did not become ready in time (its log says why)."""


def service_env(redis_url: str, **settings: str) -> dict[str, str]:
    """The environment of a service process: this one's without any PUSH_ setting, plus
    REDIS_URL and the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSH_")}
    env.update(REDIS_URL=redis_url, PYTHONUNBUFFERED="1", **settings)
    return env


class Gunicorn:
    """`gunicorn -c <config> -b 127.0.0.1:<port> -w <workers> <extra_args> <app>`."""

    def __init__(
        self,
        log_path: Path,
        env: dict[str, str],
        workers: int = 2,
        extra_args: list[str] | None = None,
        *,
        config: str = "gunicorn.conf.py",
        app: Sequence[str] = ("wsgi:app",),
        port: int | None = None,
        ready_path: str = "/static/demo.css",
        ready_line: str | None = WORKER_READY,
        stop_signal: int = signal.SIGTERM,
        stop_timeout: float = 20.0,
        preexec_fn: Callable[[], object] | None = None,
    ) -> None:
        self.extra_args = extra_args or []
        self.config = config
        self.app = list(app)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = env
        self.workers = workers
        self.ready_path = ready_path
        self.ready_line = ready_line
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def start(self, timeout: float = START_TIMEOUT_S) -> Gunicorn:
        return self.launch().wait_ready(timeout)

    def launch(self) -> Gunicorn:
        """Start gunicorn without waiting for it (a caller may overlap its boot with other
        work, then call `wait_ready`)."""
        command = [
            sys.executable,
            *("-m", "gunicorn", "-c", self.config),
            *("-b", f"127.0.0.1:{self.port}", "-w", str(self.workers)),
            *self.extra_args,
            *self.app,
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
                preexec_fn=self.preexec_fn,
            )
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> Gunicorn:
        """Wait until it answers and every worker is ready; GunicornFailed otherwise."""
        ready, why = poll(self._ready, timeout, 0.05)
        if not ready:
            raise GunicornFailed(f"gunicorn on {self.port} {why}; log:\n{self.log()[-4000:]}")
        return self

    def _ready(self) -> tuple[bool, str]:
        assert self.process is not None, "launch() first"
        if self.process.poll() is not None:
            raise GunicornFailed(f"gunicorn exited; log:\n{self.log()[-4000:]}")
        if not self.answers():
            return False, "did not answer"
        if self.ready_line is not None:
            ready = self.log()[self._log_start :].count(self.ready_line)
        else:
            ready = len(children(self.process.pid))
        return ready >= self.workers, f"had {ready} of {self.workers} workers ready"

    def answers(self) -> bool:
        """Whether `GET ready_path` answers 200 now."""
        request = f"GET {self.ready_path} HTTP/1.0\r\nHost: harness\r\n\r\n".encode()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                probe.sendall(request)
                return b" 200 " in probe.recv(64)[:16]
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[str]:
        """The pids of the master's live children (its workers)."""
        assert self.process is not None
        return {str(pid) for pid in children(self.process.pid)}

    def stop(self) -> None:
        """`stop_signal` (SIGTERM: a graceful stop), SIGKILL after `stop_timeout` seconds."""
        stop_process(self.process, self.stop_signal, self.stop_timeout)
