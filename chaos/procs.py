"""The processes of a chaos run: Redis with an append-only file, and gunicorn.

Uses the shared harness's Gunicorn (with chaos/gunicorn.conf.py, which is the project's
config plus a stats greenlet per worker) and private Redis. What a run measures from
outside, it reads from /proc: worker pids, their sockets split
into client, Redis and other descriptors, and their RSS.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.harness import redis_servers as harness_redis
from tests.harness.gunicorn import Gunicorn, service_env
from tests.harness.processes import children
from tests.harness.redis_servers import RedisServer

CHAOS = Path(__file__).resolve().parent
ROOT = CHAOS.parent
GUNICORN_CONF = CHAOS / "gunicorn.conf.py"
#: Seconds a worker's stats file may go unrefreshed before the worker counts as wedged.
STALE_STATS_S = 5.0


def start_redis(data_dir: Path, fsync: str) -> RedisServer:
    """A private Redis with AOF (`appendfsync` always or everysec), clients enough for a soak."""
    return harness_redis.start_redis(data_dir, appendfsync=fsync, maxclients=20000)


class Service:
    """gunicorn (2 gevent workers) with the chaos stats; can be restarted on the same port."""

    def __init__(self, workdir: Path, redis_url: str, workers: int = 2, **settings: str) -> None:
        self.workdir = workdir
        self.stats_dir = workdir / "stats"
        self.stats_dir.mkdir(parents=True, exist_ok=True)
        self.env = service_env(
            redis_url,
            CHAOS_STATS_DIR=str(self.stats_dir),
            CHAOS_STATS_INTERVAL_S=settings.pop("CHAOS_STATS_INTERVAL_S", "1"),
            **settings,
        )
        self.workers = workers
        self.starts = 0
        self.gunicorn: Gunicorn | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        assert self.gunicorn is not None
        return self.gunicorn.base_url

    @property
    def master_pid(self) -> int:
        assert self.gunicorn is not None and self.gunicorn.process is not None
        return self.gunicorn.process.pid

    def start(self) -> Service:
        """Start gunicorn; a restart keeps the port, so clients come back to the same URL."""
        self.starts += 1
        log = self.workdir / f"gunicorn-{self.starts}.log"
        gunicorn = Gunicorn(log, self.env, self.workers, ["-c", str(GUNICORN_CONF)], port=self.port)
        self.port = gunicorn.port
        self.gunicorn = gunicorn
        gunicorn.start()
        return self

    def stop(self) -> None:
        if self.gunicorn is not None:
            self.gunicorn.stop()

    def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM the master and wait for it to exit; the seconds it took."""
        assert self.gunicorn is not None and self.gunicorn.process is not None
        started = time.monotonic()
        self.gunicorn.process.send_signal(signal.SIGTERM)
        self.gunicorn.process.wait(timeout=timeout)
        return time.monotonic() - started

    def logs(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.workdir.glob("gunicorn-*.log"))
        )

    def worker_pids(self) -> list[int]:
        return children(self.master_pid)

    def worker_stats(self) -> dict[int, dict]:
        """The stats files of the live workers (a worker that wrote none yet is absent)."""
        found = {}
        for pid in self.worker_pids():
            with contextlib.suppress(OSError, ValueError):
                found[pid] = json.loads((self.stats_dir / f"{pid}.json").read_text())
        return found


@dataclass(frozen=True)
class Descriptors:
    """A worker's open file descriptors, by what they are."""

    clients: int
    redis: int
    other: int
    rss_kb: int

    @property
    def total(self) -> int:
        return self.clients + self.redis + self.other


def _tcp_table() -> dict[int, tuple[int, int, str]]:
    """inode -> (local port, remote port, state) for every TCP socket of this host."""
    table = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
                table[inode] = (
                    int(local.rsplit(":", 1)[1], 16),
                    int(remote.rsplit(":", 1)[1], 16),
                    state,
                )
    return table


def descriptors(pid: int, service_port: int, redis_port: int) -> Descriptors:
    """Count `pid`'s descriptors: client connections, Redis connections, the rest."""
    table = _tcp_table()
    clients = redis_conns = other = 0
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    local, remote, state = table.get(int(target[8:-1]), (0, 0, ""))
                    if remote == redis_port:
                        redis_conns += 1
                        continue
                    if local == service_port and state != "0A":  # 0A: LISTEN
                        clients += 1
                        continue
                other += 1
    return Descriptors(clients, redis_conns, other, rss_kb(pid))


def rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def redis_clients(url: str) -> dict[str, int]:
    """Redis's client list by kind: movers (named push:mover:...), pub/sub, the rest."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        listing = client.client_list()
        my_id = client.client_id()
    finally:
        client.close()
    counts = {"movers": 0, "pubsub": 0, "other": 0}
    for entry in listing:
        if int(entry["id"]) == my_id:
            continue
        if entry.get("name", "").startswith("push:mover:"):
            counts["movers"] += 1
        elif int(entry.get("sub", 0)) or int(entry.get("psub", 0)):
            counts["pubsub"] += 1
        else:
            counts["other"] += 1
    return counts


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def server_socket_of(pids: list[int], service_port: int, peer_port: int) -> tuple[int, int] | None:
    """(pid, inode) of the worker socket serving the client at 127.0.0.1:`peer_port`."""
    wanted = {
        inode
        for inode, (local, remote, _) in _tcp_table().items()
        if local == service_port and remote == peer_port
    }
    for pid in pids:
        found = _socket_inodes(pid) & wanted
        if found:
            return pid, found.pop()
    return None


def still_holds(pid: int, inode: int) -> bool:
    """Whether process `pid` still has socket `inode` open (False once it exited)."""
    return inode in _socket_inodes(pid)


def stop_run(producer, load, service: Service | None, redis_server: RedisServer) -> None:
    """A run's processes stopped in order, whichever of them had started: the producer
    first (nothing is pushed at a stopping service), then the clients, the service and
    Redis."""
    if producer is not None:
        producer.stop_event.set()
        producer.join(timeout=10)
    if load is not None:
        load.stop()
    if service is not None:
        service.stop()
    redis_server.stop()
