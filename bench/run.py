"""`make bench` / `make bench-quick`: push beside Flask-SSE and the raw Redis limit.

    .venv/bin/python bench/run.py            # full: about 13 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # about 3 minutes, for development
    .venv/bin/python bench/run.py --only shapes,capacity --profile /tmp/pyspy

Starts its own Redis (a free port, maxclients raised) and, one at a time, gunicorn with
2 gevent workers for push (`wsgi:app`, PUSH_DEMO=1; with the mailbox watcher, and with
blocking movers: PUSH_MAILBOX_WATCH=block) and for the peer (`peer_app:app`: Flask-SSE
from PyPI; bench/peer_gunicorn.conf.py repeats the server settings of the repo's
gunicorn.conf.py without push's hooks). Load comes from separate generator processes
(loadgen.py, each from its own loopback address) and a producer process (producer.py).
Writes results/<date>.json (full) or results/quick/<date>.json, the Markdown table
(RESULTS.md, or results/quick/RESULTS.md) and the PNG plots beside it (report.py).

Scenarios: `shapes` (each system with one stream per user, what push.js makes, and with
five: light-load latency at 1,000 and 10,000 streams, and throughput at 8,000 users x 1
and 200 users x 5), `capacity` (36,000 users with one stream each, push only: Flask-SSE
needs two descriptors a stream, blocking movers a Redis connection a user),
`connections` (idle streams ramped to 20,000, 5 tabs a user), `backlog` and `raw`.

Everything listens and connects on 127.0.0.1; every loop is bounded in count and time;
every process started here is stopped in a finally.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil
import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import producer  # noqa: E402
from loadgen import DELIVERIES, FAILED, LIVE, LOST, N_STATS, OPENING  # noqa: E402

from push.storage.server import RedisServer, free_port  # noqa: E402

WORKERS = 2
#: A server that fails to boot is retried after a pause (another developer may be
#: mid-edit in push/).
#: Streams opened and closed on a new server before any baseline is taken.
WARM_STREAMS = 20
#: Seconds a probe (one message per user) may take to reach every stream.
PROBE_S = 5.0
BOOT_ATTEMPTS = 3
BOOT_RETRY_S = 30.0
#: gunicorn's per-worker connection cap for both systems (PUSH_WORKER_CONNECTIONS is read
#: by gunicorn.conf.py): 20,000 streams need headroom over an even 10,000 per worker.
WORKER_CONNECTIONS = 12_000
#: ... and for the capacity ramp: 18,000 streams a worker, under the 20,000 open files a
#: process may have here (a few more are the worker's own: Redis, logs, the listener).
CAPACITY_WORKER_CONNECTIONS = 19_500


@dataclass(frozen=True)
class Plan:
    name: str
    reps: int
    generators: int
    # connections scenario: idle streams, conn_tabs per user
    conn_total: int
    conn_tabs: int
    conn_max_s: float
    #: seconds the streams sit idle before RSS and Redis are read
    conn_settle_s: float
    #: handshakes in flight per generator process during a ramp
    conn_concurrency: int
    conn_reps: int
    # shapes scenario: throughput passes at these users, and latency passes at these streams
    tp_users_5tabs: int
    tp_users_1tab: int
    lat_small: int
    lat_large: int
    tp_warm_s: float
    tp_window_s: float
    tp_inflight: int
    lat_rate: float
    lat_s: float
    # capacity scenario: users with one stream each (0: not run)
    cap_users: int
    cap_max_s: float
    cap_reps: int
    # backlog
    bl_users: int
    bl_per_user: int
    # raw limit
    raw_s: float


FULL = Plan(
    name="full",
    reps=3,
    generators=3,
    conn_total=20_000,
    conn_tabs=5,
    conn_max_s=30.0,
    conn_settle_s=1.5,
    conn_concurrency=128,
    conn_reps=1,
    tp_users_5tabs=200,
    tp_users_1tab=8000,
    lat_small=1000,
    lat_large=10_000,
    tp_warm_s=1.0,
    tp_window_s=2.5,
    tp_inflight=4000,
    lat_rate=500.0,
    lat_s=2.0,
    cap_users=36_000,
    cap_max_s=120.0,
    cap_reps=3,
    bl_users=1000,
    bl_per_user=100,
    raw_s=1.5,
)

QUICK = Plan(
    name="quick",
    reps=3,
    generators=3,
    conn_total=500,
    conn_tabs=5,
    conn_max_s=20.0,
    conn_settle_s=0.5,
    conn_concurrency=128,
    conn_reps=1,
    tp_users_5tabs=100,
    tp_users_1tab=1000,
    lat_small=500,
    lat_large=1000,
    tp_warm_s=0.5,
    tp_window_s=1.0,
    tp_inflight=4000,
    lat_rate=500.0,
    lat_s=1.0,
    cap_users=0,
    cap_max_s=30.0,
    cap_reps=1,
    bl_users=100,
    bl_per_user=100,
    raw_s=0.5,
)

SCENARIOS = ("raw", "shapes", "capacity", "backlog", "connections")
#: The systems measured (all of them unless --systems narrows it, for development):
#: label -> (server, transport, PUSH_MAILBOX_WATCH).
SYSTEMS: dict[str, tuple[str, str, str]] = {
    "push-sse": ("push", "sse", "notify"),
    "push-ws": ("push", "ws", "notify"),
    "push-sse-block": ("push", "sse", "block"),
    "flask-sse": ("peer", "sse", ""),
}
#: The shapes: streams per user.
SHAPES = (1, 5)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def summary(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def percentiles(samples_ns: array) -> dict[str, float] | None:
    if not samples_ns:
        return None
    ordered = sorted(samples_ns)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] / 1e6

    return {"n": n, "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": ordered[-1] / 1e6}


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def raise_nofile() -> None:
    loadgen.raise_nofile()


# --------------------------------------------------------------------------------------
# Processes: Redis, gunicorn, generators, producer


class Server:
    """gunicorn -c gunicorn.conf.py with 2 gevent workers: push or the Flask-SSE peer."""

    def __init__(
        self,
        system: str,
        redis_url: str,
        log_dir: Path,
        label: str,
        watch: str = "notify",
        worker_connections: int = WORKER_CONNECTIONS,
    ) -> None:
        self.system = system
        self.watch = watch
        self.worker_connections = worker_connections
        self.redis_url = redis_url
        self.port = free_port()
        self.log_path = log_dir / f"{label}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.workers: list[psutil.Process] = []

    def start(self) -> Server:
        return self.launch().wait_ready()

    def launch(self) -> Server:
        """Start gunicorn without waiting for it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSH_")}
        env.update(
            REDIS_URL=self.redis_url,
            PYTHONUNBUFFERED="1",
            PUSH_WORKER_CONNECTIONS=str(self.worker_connections),
        )
        config, app = "gunicorn.conf.py", ["wsgi:app"]
        if self.system == "push":
            env["PUSH_DEMO"] = "1"
            env["PUSH_MAILBOX_WATCH"] = self.watch
        else:
            config = str(BENCH / "peer_gunicorn.conf.py")
            app = ["--pythonpath", str(BENCH), "peer_app:app"]
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            config,
            "-b",
            f"127.0.0.1:{self.port}",
            "-w",
            str(WORKERS),
            *app,
        ]
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=raise_nofile,
            )
        return self

    def wait_ready(self) -> Server:
        """Wait until both workers run and the server answers."""
        assert self.process is not None
        deadline = time.monotonic() + 30
        master = psutil.Process(self.process.pid)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer; see {self.log_path}")
            workers = master.children()
            if len(workers) == WORKERS and self._answers():
                self.workers = workers
                return self
            time.sleep(0.1)

    def _answers(self) -> bool:
        path = "/static/demo.css" if self.system == "push" else "/ping"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                probe.sendall(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
                return b" 200 " in probe.recv(64)[:16]
        except OSError:
            return False

    def rss(self) -> int:
        total = 0
        for worker in self.workers:
            with contextlib.suppress(psutil.Error):
                total += worker.memory_info().rss
        return total

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGQUIT: gunicorn's quick shutdown (the streams were closed already).
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for worker in self.workers:
            with contextlib.suppress(psutil.Error):
                worker.kill()

    @property
    def stream_path(self) -> str:
        return (
            "/stream?user_id={user_id}"
            if self.system == "push"
            else "/stream?channel=user_{user_id}"
        )


class Generators:
    """The load generator processes and their shared counters."""

    def __init__(self, ctx, count: int) -> None:
        self.stats = [ctx.Array("q", N_STATS, lock=False) for _ in range(count)]
        self.pipes = []
        self.processes = []
        for index in range(count):
            ours, theirs = ctx.Pipe()
            process = ctx.Process(
                target=loadgen.serve, args=(theirs, self.stats[index], index), daemon=True
            )
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)
        self.ps = [psutil.Process(p.pid) for p in self.processes]

    def call(self, *command) -> list:
        for pipe in self.pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def total(self, index: int) -> int:
        return sum(stats[index] for stats in self.stats)

    def open(
        self,
        server: Server,
        transport: str,
        users: list[str],
        max_s: float,
        concurrency: int = 128,
    ) -> None:
        """One client per entry of `users` (a user id per tab), spread over the generators."""
        path = server.stream_path if transport == "sse" else "/ws?user_id={user_id}"
        for index, pipe in enumerate(self.pipes):
            pipe.send(
                (
                    "open",
                    {
                        "transport": transport,
                        "port": server.port,
                        "source": f"127.0.0.{index + 2}",
                        "path": path,
                        "users": users[index :: len(self.pipes)],
                        "concurrency": concurrency,
                        "await_head": server.system == "push",
                        "max_s": max_s,
                    },
                )
            )
        for pipe in self.pipes:
            pipe.recv()

    def counts(self) -> array:
        result = array("q")
        for reply in self.call("counts"):
            result.frombytes(reply)
        return result

    def latencies(self) -> array:
        result = array("q")
        for reply in self.call("take_latency"):
            result.frombytes(reply)
        return result

    def stop(self) -> None:
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            with contextlib.suppress(OSError):
                pipe.send(("exit",))
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


class Producer:
    def __init__(self, ctx, redis_port: int, generators: Generators) -> None:
        self.pipe, theirs = ctx.Pipe()
        self.process = ctx.Process(
            target=producer.serve, args=(theirs, redis_port, generators.stats), daemon=True
        )
        self.process.start()
        self.ps = psutil.Process(self.process.pid)

    def start(self, command: str, **kwargs) -> None:
        self.pipe.send((command, kwargs))

    def result(self, timeout: float = 120) -> dict:
        if not self.pipe.poll(timeout):
            raise RuntimeError("producer did not answer")
        return self.pipe.recv()

    def run(self, command: str, **kwargs) -> dict:
        self.start(command, **kwargs)
        return self.result()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.send(("exit", {}))
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


# --------------------------------------------------------------------------------------
# The bench


class Bench:
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
        self.redis_server = RedisServer(
            self.tmp / "redis", extra_args=("--maxclients", "50000")
        ).start()
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
                    w.is_running() for w in server.workers
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
        self._peer_idle_clients = self.redis_clients() - self.bench_clients
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
        self._peer_idle_clients = self.redis_clients() - self.bench_clients

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
        return max(0, self.redis_clients() - self.bench_clients - self._peer_idle_clients)

    _peer_idle_clients = 0

    def wait(self, condition, timeout: float, step: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(step)
        return condition()

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
        pid = str(server.workers[0].pid)
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

    # ----- scenarios

    def scenario_raw(self) -> dict:
        plan = self.plan
        result = {}
        for label, batch in (
            ("redis-py loop, 1 per round trip", 1),
            ("pipelined, 100 per round trip", 100),
        ):
            reps = []
            for _ in range(plan.reps):
                cpu0 = cpu_seconds([self.producer.ps])
                redis0 = cpu_seconds([self.redis_ps])
                r = self.producer.run("raw", duration=plan.raw_s, batch=batch)
                cpu1 = cpu_seconds([self.producer.ps])
                redis1 = cpu_seconds([self.redis_ps])
                reps.append(
                    {
                        "msgs_per_s": r["moved"] / r["seconds"],
                        "client_cpu_us_per_msg": (cpu1 - cpu0) / max(1, r["moved"]) * 1e6,
                        "redis_cpu_us_per_msg": (redis1 - redis0) / max(1, r["moved"]) * 1e6,
                    }
                )
            result[label] = {"reps": reps, "msgs_per_s": summary([r["msgs_per_s"] for r in reps])}
            log(f"raw {label}: {result[label]['msgs_per_s']['median']:,.0f} msg/s")
        return result

    def scenario_shapes(self) -> dict:
        """Each system with one stream per user (what push.js makes) and with five: a
        server per system and shape, its streams opened in stages, each stage measured
        before the next opens: light-load latency at lat_small and lat_large streams, and
        throughput at tp_users_1tab users x 1 or tp_users_5tabs users x 5."""
        plan = self.plan
        out: dict = {}
        for tabs in SHAPES:
            tp_users = plan.tp_users_1tab if tabs == 1 else plan.tp_users_5tabs
            stages = sorted(
                {(plan.lat_small, "latency"), (plan.lat_large, "latency"), (tp_users * tabs, "tp")}
            )
            shape: dict = {}
            for label, (system, transport, watch) in SYSTEMS.items():
                if transport == "ws" and tabs == 5 and plan.name != "full":
                    continue  # quick: the WebSocket in the one-stream shape only
                server = self.start_server(system, f"shape{tabs}-{label}", watch=watch)
                try:
                    shape[label] = self.shape_pass(server, label, transport, tabs, stages)
                except RuntimeError as error:
                    log(f"shape {tabs} {label} failed: {error}")
                    shape[label] = {"error": repr(error)}
                finally:
                    self.stop_server(server)
            out[f"x{tabs}"] = shape
        return out

    def shape_pass(
        self, server: Server, label: str, transport: str, tabs: int, stages: list
    ) -> dict:
        """Open streams stage by stage (users of `tabs` streams each) and measure each."""
        most = max(streams for streams, _ in stages)
        users = [f"s{tabs}u{i}" for i in range(most // tabs)]
        opened = 0
        result: dict = {"tabs": tabs, "latency": {}, "redis_clients": {}, "rss_mb": {}}
        for streams, kind in stages:
            if streams > opened:
                new_users = users[opened // tabs : streams // tabs]
                new_tabs = [u for u in new_users for _ in range(tabs)]
                random.Random(streams).shuffle(new_tabs)
                live, _, _, _ = self.open_streams(server, transport, new_tabs, 60, target=streams)
                opened = streams
                if live < streams:
                    log(f"{label} x{tabs}: only {live:,} of {streams:,} streams live")
                time.sleep(0.5)
                # Every stream gets one message first (Flask-SSE's heads come with it).
                held, _ = self.probe(server, users[: streams // tabs], streams, PROBE_S)
                result.setdefault("held", {})[streams] = held
            result["redis_clients"][streams] = self.redis_clients() - self.bench_clients
            result["rss_mb"][streams] = server.rss() / 2**20
            stage_users = users[: streams // tabs]
            if kind == "latency":
                lat = self.latency_reps(server, stage_users, transport)
                lat["streams"] = streams
                result["latency"][streams] = lat
            else:
                tp = self.throughput_reps(server, stage_users, tabs, f"{label} x{tabs}")
                tp["streams"] = streams
                tp["users"] = len(stage_users)
                result["throughput"] = tp
        return result

    def settle_deliveries(self, quiet_s: float = 0.3, limit_s: float = 5.0) -> None:
        """Wait until no delivery arrived for `quiet_s` (a late message counts too)."""
        deadline = time.monotonic() + limit_s
        last, quiet_since = self.generators.total(DELIVERIES), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.generators.total(DELIVERIES)
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return

    def latency_reps(self, server: Server, users: list[str], transport: str) -> dict:
        plan = self.plan
        reps, samples = [], []
        for rep in range(plan.reps):
            spy = (
                self.profile(server, f"latency-{server.system}-{len(users)}u", plan.lat_s)
                if rep == 0
                else []
            )
            self.generators.call("latency", True)
            gen0 = cpu_seconds(self.generators.ps)
            app0 = cpu_seconds(server.workers)
            t0 = time.monotonic()
            r = self.producer.run(
                "paced", system=server.system, users=users, rate=plan.lat_rate, duration=plan.lat_s
            )
            self.settle_deliveries()
            gen1 = cpu_seconds(self.generators.ps)
            app1 = cpu_seconds(server.workers)
            wall = time.monotonic() - t0
            lat = self.generators.latencies()
            self.generators.call("latency", False)
            stats = percentiles(lat) or {}
            stats["sent"] = r["sent"]
            stats["generator_cpu_pct_of_core"] = (gen1 - gen0) / wall * 100
            stats["app_cpu_pct_of_core"] = (app1 - app0) / wall * 100
            reps.append(stats)
            samples.append(lat)
            for process in spy:
                process.wait(timeout=60)
        result = {"reps": reps}
        for key in ("p50", "p90", "p99", "max"):
            result[key] = summary([r.get(key) for r in reps])
        result["deliveries_per_rep"] = summary([r.get("n", 0) for r in reps])
        result["app_cpu_pct_of_core"] = summary([r["app_cpu_pct_of_core"] for r in reps])
        result["generator_cpu_pct_of_core"] = summary(
            [r["generator_cpu_pct_of_core"] for r in reps]
        )
        # the rep with the median p99 keeps its samples for the CDF plot (thinned)
        order = sorted(range(len(reps)), key=lambda i: reps[i].get("p99", 0))
        chosen = sorted(samples[order[len(order) // 2]])
        step = max(1, len(chosen) // 2000)
        result["cdf_ms"] = [round(v / 1e6, 4) for v in chosen[::step]]
        log(
            f"latency {server.system} {transport}: p50 {result['p50']['median']:.2f} ms, "
            f"p99 {result['p99']['median']:.2f} ms ({reps[0].get('n', 0)} deliveries/rep)"
            if result["p50"]
            else f"latency {server.system}: no samples"
        )
        return result

    def throughput_reps(
        self, server: Server, users: list[str], per_user_tabs: int, label: str
    ) -> dict:
        plan = self.plan
        reps = []
        for rep in range(plan.reps):
            base = self.generators.total(DELIVERIES)
            self.producer.start(
                "saturate",
                system=server.system,
                users=users,
                tabs=per_user_tabs,
                window=plan.tp_inflight,
                batch=500,
                duration=plan.tp_warm_s + plan.tp_window_s + 0.2,
            )
            time.sleep(plan.tp_warm_s)
            spy = (
                self.profile(server, f"throughput-{label}", plan.tp_window_s) if rep == 0 else None
            )
            self.redis.config_resetstat()
            d0 = self.generators.total(DELIVERIES)
            app0 = cpu_seconds(server.workers)
            redis0 = cpu_seconds([self.redis_ps])
            gen0 = cpu_seconds(self.generators.ps)
            prod0 = cpu_seconds([self.producer.ps])
            t0 = time.monotonic()
            time.sleep(plan.tp_window_s)
            d1 = self.generators.total(DELIVERIES)
            t1 = time.monotonic()
            app1 = cpu_seconds(server.workers)
            redis1 = cpu_seconds([self.redis_ps])
            commands = self.info("commandstats")
            gen1 = cpu_seconds(self.generators.ps)
            prod1 = cpu_seconds([self.producer.ps])
            sent = self.producer.result()["sent"]
            # let what is in flight arrive before the next repetition
            expected = base + sent * per_user_tabs
            drained = self.wait(lambda e=expected: self.generators.total(DELIVERIES) >= e, 10)
            for process in spy or ():
                process.wait(timeout=60)
            wall = t1 - t0
            deliveries = d1 - d0
            total_cpu = (app1 - app0) + (redis1 - redis0) + (gen1 - gen0) + (prod1 - prod0)
            reps.append(
                {
                    "deliveries_per_s": deliveries / wall,
                    "app_cpu_us_per_delivery": (app1 - app0) / max(1, deliveries) * 1e6,
                    "redis_cpu_us_per_delivery": (redis1 - redis0) / max(1, deliveries) * 1e6,
                    "app_cpu_pct_of_core": (app1 - app0) / wall * 100,
                    "redis_cpu_pct_of_core": (redis1 - redis0) / wall * 100,
                    "generator_cpu_pct_of_core": (gen1 - gen0) / wall * 100,
                    "producer_cpu_pct_of_core": (prod1 - prod0) / wall * 100,
                    "generator_share_of_cpu_used_pct": (gen1 - gen0) / max(1e-9, total_cpu) * 100,
                    "all_delivered_after": drained,
                    "lost_streams": self.generators.total(LOST),
                    # The costliest commands: (calls, microseconds in Redis) per delivery.
                    "redis_commands_per_delivery": {
                        name.removeprefix("cmdstat_"): (
                            round(row["calls"] / max(1, d1 - d0), 3),
                            round(row["usec"] / max(1, d1 - d0), 2),
                        )
                        for name, row in sorted(commands.items(), key=lambda kv: -kv[1]["usec"])[
                            :12
                        ]
                    },
                }
            )
        result = {"reps": reps}
        for key in reps[0]:
            if isinstance(reps[0][key], float):
                result[key] = summary([r[key] for r in reps])
        log(
            f"throughput {label}: {result['deliveries_per_s']['median']:,.0f} deliveries/s, "
            f"{result['app_cpu_us_per_delivery']['median']:.1f} us app CPU each, "
            f"generator {result['generator_cpu_pct_of_core']['median']:.0f}% of a core"
        )
        return result

    def scenario_backlog(self) -> dict:
        plan = self.plan
        server = self.start_server("push", "backlog-push")
        reps = []
        total = plan.bl_users * plan.bl_per_user
        try:
            for rep in range(plan.reps):
                users = [f"bl{rep}x{i}" for i in range(plan.bl_users)]
                self.producer.run("preload", users=users, per_user=plan.bl_per_user)
                d0 = self.generators.total(DELIVERIES)
                app0 = cpu_seconds(server.workers)
                gen0 = cpu_seconds(self.generators.ps)
                start = time.monotonic()
                self.generators.open(server, "sse", users, 30)
                goal = d0 + total
                done = self.wait(lambda g=goal: self.generators.total(DELIVERIES) >= g, 60, 0.02)
                seconds = time.monotonic() - start
                got = self.generators.total(DELIVERIES) - d0
                app1 = cpu_seconds(server.workers)
                gen1 = cpu_seconds(self.generators.ps)
                reps.append(
                    {
                        "seconds": seconds,
                        "delivered": got,
                        "complete": done,
                        "deliveries_per_s": got / seconds,
                        "app_cpu_us_per_delivery": (app1 - app0) / max(1, got) * 1e6,
                        "generator_cpu_pct_of_core": (gen1 - gen0) / seconds * 100,
                    }
                )
                self.generators.call("close_all")
                time.sleep(0.3)
        finally:
            self.stop_server(server)
        result = {"messages": total, "users": plan.bl_users, "reps": reps}
        for key in ("seconds", "deliveries_per_s", "app_cpu_us_per_delivery"):
            result[key] = summary([r[key] for r in reps])
        log(f"backlog push: {total:,} messages in {result['seconds']['median']:.2f} s")
        return result

    def scenario_connections(self) -> dict:
        """Idle streams ramped to conn_total, conn_tabs per user, a fresh server per rep."""
        plan = self.plan
        n_users = plan.conn_total // plan.conn_tabs
        out = {}
        for label in ("push-sse", "push-ws", "flask-sse"):
            if label not in SYSTEMS:
                continue
            system, transport, watch = SYSTEMS[label]
            ramps = [
                [u for u in (f"c{rep}x{i}" for i in range(n_users)) for _ in range(plan.conn_tabs)]
                for rep in range(plan.conn_reps)
            ]
            for rep, tabs in enumerate(ramps):
                random.Random(3 + rep).shuffle(tabs)
            result = self.ramps(label, system, transport, watch, ramps, plan.conn_max_s)
            result.update(target=plan.conn_total, users=n_users)
            out[label] = result
        return out

    def scenario_capacity(self) -> dict:
        """cap_users users with one stream each, on the mailbox watcher: 18,000 streams a
        worker at the full size, under the 20,000 open files a process may have here."""
        plan = self.plan
        if not plan.cap_users or "push-sse" not in SYSTEMS:
            return {}
        ramps = [[f"k{rep}x{i}" for i in range(plan.cap_users)] for rep in range(plan.cap_reps)]
        result = self.ramps(
            "push-sse",
            "push",
            "sse",
            "notify",
            ramps,
            plan.cap_max_s,
            worker_connections=CAPACITY_WORKER_CONNECTIONS,
        )
        result.update(target=plan.cap_users, users=plan.cap_users)
        return {"push-sse": result}

    def ramps(
        self,
        label: str,
        system: str,
        transport: str,
        watch: str,
        ramps: list[list[str]],
        max_s: float,
        **options,
    ) -> dict:
        """One ramp per entry of `ramps` (a user id per stream), each on a fresh server:
        clean baselines, and Flask-SSE notices a client gone only when it next writes to
        it. The next server boots while this one stops."""
        options["watch"] = watch
        reps = []
        server = following = None
        try:
            for rep, tabs in enumerate(ramps):
                users = sorted(set(tabs))
                t0 = time.monotonic()
                server = self.start_server(
                    system, f"ramp-{label}-{rep}", launched=following, **options
                )
                following = None
                t1 = time.monotonic()
                reps.append(self.connections_rep(server, transport, users, tabs, label, rep, max_s))
                t2 = time.monotonic()
                if rep + 1 < len(ramps):
                    following = self.launch_server(system, f"ramp-{label}-{rep + 1}", **options)
                self.stop_server(server, flush=following is None)
                server = None
                reps[-1]["phase_s"] = {
                    "start": round(t1 - t0, 2),
                    "measure": round(t2 - t1, 2),
                    "stop": round(time.monotonic() - t2, 2),
                }
        finally:
            for leftover in (server, following):
                if leftover is not None:
                    self.stop_server(leftover)
        result: dict = {"reps": reps}
        for key in reps[0]:
            if isinstance(reps[0][key], (int, float)):
                result[key] = summary([r[key] for r in reps])
        # the RSS-vs-connections curve of the median rep
        order = sorted(range(len(reps)), key=lambda i: reps[i]["rss_kb_per_conn"])
        result["curve"] = reps[order[len(order) // 2]]["samples"]
        for r in reps:
            r.pop("samples")
        log(
            f"ramp {label}: held {result['held']['median']:,.0f}, "
            f"{result['rss_kb_per_conn']['median']:.1f} KB RSS each, "
            f"{result['redis_clients']['median']:,.0f} Redis clients, "
            f"{result['accept_per_s']['median']:,.0f}/s"
        )
        return result

    def connections_rep(
        self,
        server: Server,
        transport: str,
        users: list[str],
        tabs: list[str],
        label: str,
        rep: int,
        max_s: float,
    ) -> dict:
        """Ramp idle streams to len(tabs) within `max_s` of ramping, measure the workers
        and Redis, then probe which streams are held."""
        plan = self.plan
        rss0 = server.rss()
        mem0 = int(self.info("memory")["used_memory"])
        spy = self.profile(server, f"connections-{label}", 20) if rep == 0 else []
        g0, a0 = cpu_seconds(self.generators.ps), cpu_seconds(server.workers)
        live, ramp_s, spent, samples = self.open_streams(server, transport, tabs, max_s)
        gen_busy = cpu_seconds(self.generators.ps) - g0
        app_busy = cpu_seconds(server.workers) - a0
        time.sleep(plan.conn_settle_s)
        rss = server.rss()
        mem = int(self.info("memory")["used_memory"])
        clients = self.redis_clients() - self.bench_clients
        if server.system != "push":
            # Flask-SSE holds a Redis connection per stream and nothing else; the warm-up
            # streams it has not noticed are gone (it never writes to them) do not count.
            clients -= self._peer_idle_clients
        open_now = self.live(server, tabs)
        held, online = self.probe(server, users, len(tabs), PROBE_S)
        failed = self.generators.total(FAILED)
        for process in spy:
            process.wait(timeout=60)
        # per connection: the streams open when RSS and Redis were read
        open_n = max(1, open_now)
        result = {
            "target": len(tabs),
            "live": live,
            "open": open_now,
            "held": held,
            "failed": failed,
            "online_users": online,
            "ramp_s": ramp_s,
            "accept_per_s": live / ramp_s if ramp_s else 0.0,
            "app_cpu_us_per_accept": app_busy / max(1, live) * 1e6,
            "rss_mb": rss / 2**20,
            "rss_kb_per_conn": (rss - rss0) / open_n / 1024,
            "redis_used_memory_mb": mem / 2**20,
            "redis_bytes_per_conn": (mem - mem0) / open_n,
            "redis_clients": clients,
            "redis_clients_per_conn": clients / open_n,
            "redis_clients_per_user": clients / max(1, online),
            "generator_cpu_pct_of_core": gen_busy / max(1e-9, spent) * 100,
            "samples": samples,
        }
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, about 3 minutes")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma list of scenarios")
    parser.add_argument("--profile", type=Path, help="py-spy the first push worker into DIR")
    parser.add_argument(
        "--native", action="store_true", help="with --profile: C frames too (slows the worker)"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="override a plan field: KEY=VALUE (development)"
    )
    parser.add_argument("--systems", help=f"comma list of {','.join(SYSTEMS)} (development)")
    parser.add_argument(
        "--no-write", action="store_true", help="write the JSON to the temp dir only"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    for item in args.set:
        key, _, value = item.partition("=")
        current = getattr(plan, key)
        plan = replace(
            plan, **{key: type(current)(value) if not isinstance(current, bool) else value == "1"}
        )
    if args.systems:
        chosen = args.systems.split(",")
        for label in list(SYSTEMS):
            if label not in chosen:
                del SYSTEMS[label]
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    started = time.monotonic()
    results: dict = {
        "date": dt.date.today().isoformat(),
        "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        "plan": asdict(plan),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "nofile_limit": loadgen.raise_nofile(),
            "workers": WORKERS,
            "worker_connections": WORKER_CONNECTIONS,
            "capacity_worker_connections": CAPACITY_WORKER_CONNECTIONS,
        },
        "scenarios": {},
        "seconds": {},
    }
    log(f"{plan.name} run: {', '.join(wanted)}")
    with Bench(plan, args.profile, args.native) as bench:
        results["machine"]["redis"] = bench.info("server")["redis_version"]
        for name in SCENARIOS:
            if name not in wanted:
                continue
            t = time.monotonic()
            try:
                data = getattr(bench, f"scenario_{name}")()
            except Exception as error:  # one failed scenario must not lose the others
                log(f"scenario {name} failed: {error!r}")
                results.setdefault("errors", {})[name] = repr(error)
                for server in list(bench.servers):
                    bench.stop_server(server)
                continue
            results["scenarios"][name] = data
            results["seconds"][name] = round(time.monotonic() - t, 1)
    results["seconds"]["total"] = round(time.monotonic() - started, 1)
    log(f"done in {results['seconds']['total']:.0f} s")
    if args.no_write:
        path = Path(tempfile.gettempdir()) / f"push-bench-{plan.name}.json"
        path.write_text(json.dumps(results, indent=1))
        log(f"results in {path} (--no-write: nothing written under bench/)")
        return 0
    import report

    out_dir = BENCH / "results" if plan.name == "full" else BENCH / "results" / "quick"
    md_path = BENCH / "RESULTS.md" if plan.name == "full" else out_dir / "RESULTS.md"
    report.write_all(results, out_dir, md_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
