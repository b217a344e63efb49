"""The bench's rig: one private Redis, the generator and producer processes, and the
systems under test started one at a time; the measurements every scenario takes with
them (live streams, probes, CPU seconds, Redis INFO, py-spy profiles). Every process
started here is stopped on the way out."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import producer
import psutil
import redis
from drivers import Generators, Producer
from load_clients import LIVE, OPENING
from plans import BOOT_ATTEMPTS, BOOT_RETRY_S, WARM_STREAMS, Plan
from system import Server

from tests.harness.limits import raise_nofile
from tests.harness.redis_servers import RedisServer, start_redis
from tests.harness.waits import wait_for


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


class Bench:
    """The rig of one run, a context manager: `with Bench(plan, None) as bench: ...`."""

    def __init__(self, plan: Plan, profile_dir: Path | None, profile_native: bool = False) -> None:
        self.plan = plan
        self.profile_dir = profile_dir
        self.profile_native = profile_native
        self.tmp = Path(tempfile.mkdtemp(prefix="push-bench-"))
        self.redis_server: RedisServer | None = None
        self.redis: redis.Redis | None = None
        self.generators: Generators | None = None
        self.producer: Producer | None = None
        self.servers: list[Server] = []
        self.redis_ps: psutil.Process | None = None
        self.bench_clients = 0
        self.run_id = 0

    # ----- set-up and tear-down

    def __enter__(self) -> Bench:
        raise_nofile()
        ctx = mp.get_context("spawn")
        self.redis_server = start_redis(self.tmp / "redis", maxclients=50_000)
        self.redis_ps = psutil.Process(self.redis_server.process.pid)
        self.redis = redis.Redis(port=self.redis_server.port, socket_timeout=30)
        self.generators = Generators(ctx, self.plan.generators)
        self.producer = Producer(ctx, self.redis_server.port, self.generators)
        self.producer.run("paced", system="push", users=["warm"], rate=10, duration=0.01)
        self.bench_clients = self.redis_clients()
        return self

    def __exit__(self, *exc) -> None:
        for server in self.servers:
            server.stop()
        if self.producer is not None:
            self.producer.stop()
        if self.generators is not None:
            self.generators.stop()
        if self.redis_server is not None:
            self.redis_server.stop()
        shutil.rmtree(self.tmp / "redis", ignore_errors=True)

    def launch_server(self, system: str, label: str, **options) -> Server:
        """Start booting a server (to overlap its boot with the previous one's stop);
        `options` are Server's (watch, worker_connections)."""
        self.run_id += 1
        server = Server(
            system, self.redis_server.url, self.tmp, f"{self.run_id:02d}-{label}", **options
        )
        self.servers.append(server)
        return server.launch()

    def start_server(
        self, system: str, label: str, launched: Server | None = None, **options
    ) -> Server:
        """A warmed-up server; a boot failure (push/ being edited, say) is retried."""
        for attempt in range(BOOT_ATTEMPTS):
            server = (
                launched if launched is not None else self.launch_server(system, label, **options)
            )
            launched = None
            try:
                server.wait_ready()
                time.sleep(0.2)
                if server.process.poll() is not None or not all(
                    w.is_running() for w in server.worker_processes
                ):
                    raise RuntimeError(f"gunicorn lost a worker at boot; see {server.log_path}")
                self.warm_up(server)
                return server
            except RuntimeError as error:
                self.stop_server(server)
                if attempt == BOOT_ATTEMPTS - 1:
                    raise
                log(f"{error}: retrying in {BOOT_RETRY_S:.0f} s")
                time.sleep(BOOT_RETRY_S)
        raise AssertionError("unreachable")

    def stop_server(self, server: Server, flush: bool = True) -> None:
        """Close the streams, stop the server, wait until Redis has dropped its clients
        (the next baseline must not count them) and, unless told not to (a next server is
        booting), empty Redis."""
        self.generators.call("close_all")
        server.stop()
        if server in self.servers:
            self.servers.remove(server)
        if flush:
            self.redis.flushall()
            self.wait(lambda: self.redis_clients() <= self.bench_clients, 10, step=0.1)

    def warm_up(self, server: Server) -> None:
        """A few streams and messages, so both workers have imported and connected
        everything they lazily set up before any baseline is taken."""
        users = [f"warm{i}" for i in range(WARM_STREAMS)]
        self.peer_idle_clients = self.redis_clients() - self.bench_clients
        self.generators.open(server, "sse", users, 10)
        # Until every warm stream got a message: a pub/sub stream may subscribe late.
        deadline = time.monotonic() + 15
        while True:
            self.check(server)
            self.send_one_each(server.system, users)
            got = self.wait(
                lambda: sum(1 for c in self.generators.counts() if c >= 1) >= len(users),
                0.5,
                step=0.05,
            )
            if got:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"warm-up streams got no message; see {server.log_path}")
        self.generators.call("close_all")
        time.sleep(0.3)
        self.check(server)
        self.peer_idle_clients = self.redis_clients() - self.bench_clients

    def check(self, server: Server) -> None:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited; see {server.log_path}")

    # ----- measurements

    def info(self, section: str) -> dict:
        return self.redis.info(section)

    def redis_clients(self) -> int:
        return int(self.info("clients")["connected_clients"])

    def live(self, server: Server, tabs: list[str] | int) -> int:
        """Streams the server has made live. push sends its head at once; Flask-SSE only
        with the first message, so its streams are counted by their Redis connections
        (one pub/sub connection each)."""
        if server.system == "push":
            return self.generators.total(LIVE)
        return max(0, self.redis_clients() - self.bench_clients - self.peer_idle_clients)

    peer_idle_clients = 0

    def wait(self, condition, timeout: float, step: float = 0.05) -> bool:
        return wait_for(condition, timeout, step)

    def send_one_each(self, system: str, users: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for i, user_id in enumerate(users):
            producer.send(pipe, system, user_id)
            if i % 500 == 499:
                pipe.execute()
        pipe.execute()

    def open_streams(
        self, server: Server, transport: str, tabs: list[str], max_s: float, target: int = 0
    ):
        """Open one stream per entry of `tabs` until `target` streams (default: that many)
        are live, progress stops, or `max_s` passes; then stop opening. Returns (live,
        seconds until the last stream went live, seconds spent, samples of (seconds, live,
        worker RSS bytes))."""
        target = target or len(tabs)
        samples = []
        start = time.monotonic()
        self.generators.open(server, transport, tabs, max_s, self.plan.conn_concurrency)
        best, best_at, last_change = 0, 0.0, start
        next_sample = start
        while True:
            now = time.monotonic()
            live = self.live(server, tabs)
            if live > best:
                best, best_at, last_change = live, now - start, now
            if now >= next_sample:
                samples.append((round(now - start, 3), live, server.rss()))
                next_sample = now + 0.25
            if live >= target:
                break
            opening = self.generators.total(OPENING)
            if now - start > max_s or (now - last_change > 8 and opening == 0):
                break
            if now - last_change > 15:
                break
            time.sleep(0.05)
        self.generators.call("stop_opening")
        elapsed = time.monotonic() - start
        samples.append((round(elapsed, 3), best, server.rss()))
        return best, best_at, elapsed, samples

    def probe(
        self, server: Server, users: list[str], expected: int, timeout: float
    ) -> tuple[int, int]:
        """One message to every user; the streams that receive it are the ones held.
        Returns (streams held, users with a stream open)."""
        self.generators.call("reset_counts")
        self.send_one_each(server.system, users)

        def held() -> int:
            return sum(1 for c in self.generators.counts() if c >= 1)

        self.wait(lambda: held() >= expected, timeout, step=0.25)
        online = set()
        for reply in self.generators.call("live_users"):
            online.update(reply)
        return held(), len(online)

    def profile(self, server: Server, name: str, seconds: float) -> list[subprocess.Popen]:
        """py-spy record one push worker: collapsed stacks (.txt) and a flamegraph (.svg)."""
        if self.profile_dir is None:
            return []
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        pid = str(server.worker_processes[0].pid)
        out = self.profile_dir / f"{name}-{pid}"
        log(f"py-spy on worker {pid} for {seconds:.0f} s -> {out}.*")
        common = ["--pid", pid, "--duration", str(max(1, int(seconds))), "--rate", "250"]
        # --native also samples C frames (the GC, libev, greenlet switches), but it stops
        # the worker for each sample: figures measured meanwhile are off.
        common += ["--native"] if self.profile_native else ["--nonblocking"]
        return [
            subprocess.Popen(
                [spy, "record", *common, "--format", fmt, "-o", f"{out}.{ext}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for fmt, ext in (("raw", "txt"), ("flamegraph", "svg"))
        ]
