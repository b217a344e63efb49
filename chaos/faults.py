"""The faults of a chaos run that break the server side, at seeded random times while the
producer pushes: SIGKILL of a random worker (gunicorn replaces it) and Redis restarts
(SHUTDOWN, which writes its append-only file, or SIGKILL). Between faults the runner
samples each worker's stats file, so a worker that stops refreshing it counts as wedged.

The faults on the client side are chaos/clients.py's (churn, slow consumers) and
chaos/proxy.py's (connections cut silently); what they did is judged in chaos/analysis.py
and chaos/baseline.py.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from chaos.config import REPLACE_TIMEOUT_S, ChaosConfig
from chaos.procs import STALE_STATS_S, Service
from tests.harness.redis_servers import RedisServer
from tests.harness.waits import poll

if TYPE_CHECKING:
    from chaos.result import ChaosResult


@dataclass
class Fault:
    at_s: float
    kind: str  # "kill-worker" | "redis-sigkill" | "redis-shutdown"
    done_at: float = 0.0
    detail: str = ""


def fault_schedule(config: ChaosConfig, rng: random.Random) -> list[Fault]:
    """Worker kills and Redis restarts spread over the run, away from the silent cut."""
    total = config.produce_s
    kinds = ["kill-worker"] * config.worker_kills + [f"redis-{h}" for h in config.redis_restarts]
    rng.shuffle(kinds)
    quiet_from = config.silent_cut_at * total - 1.0
    quiet_to = quiet_from + 1.0 + config.idle_s + 3.0
    segments = [
        (lo, hi)
        for lo, hi in ((0.08 * total, quiet_from), (quiet_to, 0.85 * total))
        if hi - lo > 0.5
    ]
    length = sum(hi - lo for lo, hi in segments)
    faults = []
    for i, kind in enumerate(kinds):
        offset = (i + 0.5 + rng.uniform(-0.3, 0.3)) * length / len(kinds)
        for lo, hi in segments:
            if offset <= hi - lo:
                faults.append(Fault(lo + offset, kind))
                break
            offset -= hi - lo
    return sorted(faults, key=lambda f: f.at_s)


def restart_redis(server: RedisServer, how: str) -> float:
    """Stop Redis (`SHUTDOWN`, which writes its AOF, or SIGKILL) and start it again.

    Returns the time.time() at which it stopped. Call it from the thread that started
    the server: it dies with the thread that forked it (PR_SET_PDEATHSIG)."""
    assert server.process is not None
    if how == "shutdown":
        # No retries: redis-py would otherwise reconnect (with backoff) after the SHUTDOWN.
        client = redis.Redis(port=server.port, socket_timeout=10, retry=Retry(NoBackoff(), 0))
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown()
        client.close()
    else:
        server.process.kill()
    stopped = time.time()
    server.process.wait(timeout=30)
    server.start()
    return stopped


class FaultRunner:
    """Runs the fault schedule from the main thread, watching the workers in between."""

    def __init__(self, service: Service, redis_server, result: ChaosResult) -> None:
        self.service = service
        self.redis_server = redis_server
        self.result = result
        self.rng = random.Random(result.config.seed + 1)
        self.max_stale: dict[int, float] = {}
        self.unhealthy: dict[int, int] = {}
        self.born: dict[int, float] = {}

    def run(self, faults: list[Fault], t0: float, until: float) -> None:
        for fault in faults:
            self._watch_until(t0 + fault.at_s)
            self._inject(fault)
            fault.done_at = time.time() - t0
        self._watch_until(until)

    def _watch_until(self, moment: float) -> None:
        while time.time() < moment:
            self._sample()
            time.sleep(min(0.5, max(0.0, moment - time.time())))

    def _sample(self) -> None:
        now = time.time()
        for pid, stats in self.service.worker_stats().items():
            self.born.setdefault(pid, now)
            if now - self.born[pid] < STALE_STATS_S:
                continue  # a new worker writes its first file when its app is loaded
            self.max_stale[pid] = max(self.max_stale.get(pid, 0.0), now - stats["time"])
            if stats["healthz"] != 200:
                self.unhealthy[pid] = stats["healthz"]

    def _inject(self, fault: Fault) -> None:
        if fault.kind == "kill-worker":
            self._kill_worker(fault)
        else:
            how = fault.kind.removeprefix("redis-")
            stopped = restart_redis(self.redis_server, how)
            fault.detail = f"down {time.time() - stopped:.2f}s"
            if how == "sigkill":
                self.result.producer.setdefault("redis_kills", []).append(stopped)

    def _kill_worker(self, fault: Fault) -> None:
        pids = self.service.worker_pids()
        if not pids:
            fault.detail = "no worker to kill"
            return
        victim = self.rng.choice(pids)
        os.kill(victim, signal.SIGKILL)
        self.max_stale.pop(victim, None)
        ok, _ = poll(
            lambda: (
                (p := self.service.worker_pids()) is not None
                and victim not in p
                and len(p) == self.service.workers,
                p,
            ),
            REPLACE_TIMEOUT_S,
            0.1,
        )
        fault.detail = f"pid {victim}" + ("" if ok else " (not replaced in time)")
