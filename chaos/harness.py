"""One chaos run: Redis with AOF, gunicorn with 2 gevent workers, clients, a producer, faults.

    config = ChaosConfig(fsync="always")            # the full run `make chaos` does twice
    result = run_chaos(config, Path("/tmp/somewhere"))
    result.ok, result.table_row()

Faults, at seeded random times while the producer pushes: SIGKILL of a random worker
(gunicorn replaces it), Redis restarts (SHUTDOWN and SIGKILL), churning clients that hang
up at random moments (mid-request, mid-frame, after a while; FIN or RST), slow consumers
that read a few bytes at a time from the start of their user's history until the outbox
limit cuts them, and connections cut silently by a TCP proxy. No other fault runs near a
silent cut, so the time each end takes to notice it is the heartbeats' doing alone.

Afterwards every client must have every message of its user, in order (under `everysec`,
messages Redis lost to its own SIGKILL are counted apart), and every worker must be back
to its idle baseline: no connection, user, greenlet or client socket left over, no mover
connection in Redis, and a stats file refreshed every second all along (not wedged).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import random
import signal
import statistics
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clients import open_sse

from chaos import loadproc
from chaos.clients import Churn, Slowness
from chaos.loadproc import LoadPlan, SilentCut
from chaos.procs import (
    STALE_STATS_S,
    Service,
    descriptors,
    raise_nofile,
    redis_clients,
    restart_redis,
    start_redis,
)
from chaos.producer import Producer, ProducerResult
from push.model.keys import user_keys
from push.storage.store import Store

#: The service's settings for a chaos run. Heartbeats and pings are short so that silent
#: cuts are noticed in seconds; the outbox is small (and the drain batch below it, see
#: the regression test of that fault) so slow consumers are cut within the run.
SERVICE_SETTINGS = {
    "PUSH_DEMO": "1",
    "PUSH_HEARTBEAT_S": "1",
    "PUSH_WS_PING_S": "2",
    "PUSH_RETRY_MS": "500",
    "PUSH_RECONNECT_SPREAD_S": "1",
    "PUSH_OUTBOX_MAX": "50",
    "PUSH_DRAIN_BATCH": "25",
    "PUSH_MAX_CONNECTIONS_PER_USER": "100",
    "PUSH_PRESENCE_LEASE_S": "10",
}
MAILBOX_TEMPLATE = "user_{user_id}_messages"
#: Redis connections an idle worker may keep: its pool (PUSH_REDIS_POOL_SIZE, 50), its
#: pub/sub connection, its mailbox watcher's, /readyz's client (4) and a little slack;
#: blocking movers must be gone.
IDLE_REDIS_FDS_MAX = 50 + 1 + 1 + 4 + 4
#: Seconds the workers get to return to their idle baseline once the clients are gone.
BASELINE_TIMEOUT_S = 30.0
#: Seconds gunicorn gets to replace a killed worker.
REPLACE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ChaosConfig:
    name: str = "full"
    fsync: str = "always"
    #: PUSH_MAILBOX_WATCH: notify (the per-worker mailbox watcher) or block.
    watch: str = "notify"
    users: int = 100
    clients_per_user: int = 3
    messages: int = 50_000
    rate: float = 600.0
    worker_kills: int = 10
    redis_restarts: tuple[str, ...] = ("sigkill", "shutdown", "sigkill")
    churn: int = 1000
    slow: int = 100
    fat_users: int = 10
    fat_pad: int = 2000
    slow_max_s: float = 20.0  # the longest a slow consumer reads slowly
    pad: int = 40
    silent_cut_at: float = 0.4  # of the producing time
    idle_s: float = 5.0
    settle_s: float = 60.0
    workers: int = 2
    seed: int = 8

    @property
    def produce_s(self) -> float:
        return self.messages / self.rate

    def user_ids(self) -> list[str]:
        return [f"c{i:03d}" for i in range(self.users)]


#: The short version, for tests/test_chaos.py: the same faults, fewer of each.
QUICK = ChaosConfig(
    name="quick",
    users=20,
    messages=4_000,
    rate=250.0,
    worker_kills=3,
    redis_restarts=("sigkill", "shutdown"),
    churn=150,
    slow=10,
    fat_users=2,
    slow_max_s=6.0,
    silent_cut_at=0.05,
    settle_s=45.0,
)


@dataclass
class Fault:
    at_s: float
    kind: str  # "kill-worker" | "redis-sigkill" | "redis-shutdown"
    done_at: float = 0.0
    detail: str = ""


@dataclass
class ChaosResult:
    config: ChaosConfig
    faults: list[Fault] = field(default_factory=list)
    producer: dict = field(default_factory=dict)
    delivery: dict = field(default_factory=dict)
    clients: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    workers: dict = field(default_factory=dict)
    duration_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds each part took
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """Everything that makes this run a failure, in words."""
        found = list(self.errors)
        d = self.delivery
        if d.get("lost", 1):
            found.append(f"{d.get('lost')} messages lost ({d.get('lost_examples')})")
        if d.get("reordered", 1):
            found.append(f"{d.get('reordered')} out of order ({d.get('reorder_examples')})")
        if d.get("dup_ids_same_connection", 0):
            found.append(f"{d['dup_ids_same_connection']} duplicates within one connection")
        if not self.after.get("ok", False):
            found.append(f"not back to baseline: {self.after.get('why')}")
        if self.workers.get("wedged"):
            found.append(f"wedged workers: {self.workers['wedged']}")
        for cut in self.clients.get("silent_cuts", []):
            if cut.get("client_noticed_s") is None or cut.get("server_released_s") is None:
                found.append(f"a silent cut was not noticed: {cut}")
        return found


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


def load_plan(config: ChaosConfig, port: int, master_pid: int, rng: random.Random) -> LoadPlan:
    users = config.user_ids()
    per_user = config.clients_per_user
    transports = [
        ["sse", "ws", "sse" if u % 2 == 0 else "ws"][:per_user] for u in range(len(users))
    ]
    total = config.produce_s
    fat = users[2 : 2 + config.fat_users]
    slow = [
        (fat[i % len(fat)], "sse" if i % 2 == 0 else "ws", rng.uniform(0.15, 0.5) * total)
        for i in range(config.slow)
    ]
    churn = [
        Churn(
            start_s=rng.uniform(0.02, 0.95) * total,
            user=rng.choice(users[2:]),
            transport=rng.choice(("sse", "ws")),
            style=(style := rng.choice(("request", "bytes", "time"))),
            amount={"request": rng.randint(1, 300), "bytes": rng.randint(1, 30_000)}.get(
                style, rng.uniform(0.0, 3.0)
            ),
            reset=rng.random() < 0.5,
            from_start=rng.random() < 0.3,
        )
        for _ in range(config.churn)
    ]
    return LoadPlan(
        port=port,
        users=users,
        transports=transports,
        slow=slow,
        slowness=Slowness(max_s=config.slow_max_s),
        churn=churn,
        silent_cuts=[SilentCut(0, 2, "reset"), SilentCut(1, 2, "drop")],
        silent_cut_at_s=config.silent_cut_at * total,
        idle_s=config.idle_s,
        master_pid=master_pid,
        lifetime_s=total + config.settle_s + 300,
        seed=config.seed,
    )


class LoadProcess:
    """The clients' process (chaos/loadproc.py), spawned, spoken to through a Pipe."""

    def __init__(self, plan: LoadPlan) -> None:
        context = mp.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=loadproc.main, args=(child, plan), daemon=True)

    def start(self) -> LoadProcess:
        self.process.start()
        return self

    def ask(self, command: tuple, timeout: float) -> object:
        self.pipe.send(command)
        if not self.pipe.poll(timeout):
            raise TimeoutError(f"the clients' process did not answer {command[0]!r}")
        return self.pipe.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def poll(predicate, timeout: float, interval: float = 0.25):
    """Call `predicate` until it returns (True, value) or `timeout` passes; (ok, last value)."""
    deadline = time.monotonic() + timeout
    while True:
        ok, value = predicate()
        if ok or time.monotonic() > deadline:
            return ok, value
        time.sleep(interval)


def _answers(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except OSError:
        return 0


def warm_up(service: Service, redis_port: int) -> dict:
    """Serve a stream on every worker (their hubs start lazily), let go, measure the idle
    baseline: greenlets, descriptors and Redis clients of workers with nothing to do."""
    streams = []
    try:
        for i in range(64):
            stream = open_sse(service.base_url, {"user_id": f"warm{i}"})
            stream.wait_for_comment("connected")
            streams.append(stream)
            stats = service.worker_stats()
            if len(stats) == service.workers and all(s["hub_started"] for s in stats.values()):
                break
    finally:
        for stream in streams:
            stream.close()
    since = time.time()
    ok, idle = poll(_steady(lambda: _idle(service, redis_port, since)), BASELINE_TIMEOUT_S, 0.5)
    if not ok:
        raise AssertionError(f"the workers did not settle after warm-up: {idle}")
    return {
        "greenlets": max(s["greenlets"] for s in idle["stats"].values()),
        "greenlet_kinds": {pid: s.get("greenlet_kinds") for pid, s in idle["stats"].items()},
        "other_fds": max(d.other for d in idle["fds"].values()),
        "redis_fds": max(d.redis for d in idle["fds"].values()),
        "rss_kb": {pid: d.rss_kb for pid, d in idle["fds"].items()},
        "redis_clients": idle["redis"],
    }


def _steady(check):
    """`check`, made to pass only when two stats samples in a row agree on the greenlets:
    the first idle moment after the streams close still has greenlets on their way out."""
    previous: dict = {}

    def steady():
        ok, seen = check()
        counts = {pid: (s["time"], s["greenlets"]) for pid, s in seen["stats"].items()}
        agreed = bool(previous) and all(
            pid in previous and previous[pid][0] != t and previous[pid][1] == g
            for pid, (t, g) in counts.items()
        )
        if ok:
            previous.clear()
            previous.update(counts)
        return ok and agreed, seen

    return steady


def _idle(service: Service, redis_port: int, since: float, baseline: dict | None = None):
    """(every worker idle and, given a baseline, back to it; what was seen)."""
    stats = service.worker_stats()
    fds = {pid: descriptors(pid, service.port, redis_port) for pid in stats}
    seen = {
        "stats": stats,
        "fds": fds,
        "redis": redis_clients(f"redis://127.0.0.1:{redis_port}/0"),
    }
    fresh = len(stats) == service.workers and all(s["time"] > since for s in stats.values())
    idle = all(s["connections"] == 0 and s["users"] == 0 for s in stats.values())
    idle = idle and all(d.clients == 0 for d in fds.values()) and seen["redis"]["movers"] == 0
    if baseline is not None:
        idle = idle and all(s["greenlets"] <= baseline["greenlets"] for s in stats.values())
        idle = idle and all(d.other <= baseline["other_fds"] for d in fds.values())
        idle = idle and all(d.redis <= IDLE_REDIS_FDS_MAX for d in fds.values())
    return fresh and idle, seen


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


def run_chaos(config: ChaosConfig, workdir: Path, say=print) -> ChaosResult:
    """Run one chaos run in `workdir` (Redis data, logs, stats); every process is stopped."""
    raise_nofile()
    started = time.monotonic()
    rng = random.Random(config.seed)
    result = ChaosResult(config)
    redis_server = start_redis(workdir / "redis", config.fsync)
    service = load = producer = None
    try:
        watch = "c000,c001"
        service = Service(
            workdir,
            redis_server.url,
            config.workers,
            CHAOS_WATCH_USERS=watch,
            PUSH_MAILBOX_WATCH=config.watch,
            **SERVICE_SETTINGS,
        ).start()
        result.baseline = warm_up(service, redis_server.port)
        mark = _phase(result, "start and warm up", started)
        plan = load_plan(config, service.port, service.master_pid, rng)
        load = LoadProcess(plan).start()
        clients = len(config.user_ids()) * config.clients_per_user
        ok, status = poll(lambda: _all_connected(load, clients), 60, 0.5)
        if not ok:
            raise AssertionError(f"the clients did not all connect: {status}")
        mark = _phase(result, "connect the clients", mark)
        say(f"[{config.name}/{config.fsync}/{config.watch}] {clients} clients connected; producing")
        t0 = time.time() + 1.0
        users = config.user_ids()
        pads = {u: config.pad for u in users} | dict.fromkeys(plan_fat(plan), config.fat_pad)
        producer = Producer(redis_server.url, users, pads, config.messages, config.rate, t0)
        producer.start()
        load.ask(("go", t0), 30)
        result.faults = fault_schedule(config, rng)
        runner = FaultRunner(service, redis_server, result)
        runner.run(result.faults, t0, until=t0 + config.produce_s)
        producer.join(timeout=config.produce_s + 120)
        mark = _phase(result, "produce under faults", mark)
        say(
            f"[{config.name}/{config.fsync}/{config.watch}] produced; "
            "waiting for every client to catch up"
        )
        outcome = load.ask(
            ("finish", producer.result.expected_per_user(users), config.settle_s),
            config.settle_s + 120,
        )
        kept, queued = persisted(redis_server.url, users)
        result.delivery = analyse(outcome["records"], producer.result, users, kept, queued, result)
        result.clients = {k: v for k, v in outcome.items() if k != "records"}
        result.producer.update(
            messages=config.messages,
            acked=config.messages - producer.result.given_up(),
            retried=len(producer.result.retried),
            errors=producer.result.errors,
        )
        mark = _phase(result, "catch up", mark)
        result.after = back_to_baseline(service, redis_server.port, result.baseline)
        result.workers = worker_health(service, runner)
        mark = _phase(result, "back to baseline", mark)
    except Exception as error:  # a broken run is a failed run, with its reason on record
        result.errors.append(f"{type(error).__name__}: {error}")
        raise
    finally:
        if producer is not None:
            producer.stop_event.set()
            producer.join(timeout=10)
        if load is not None:
            load.stop()
        if service is not None:
            service.stop()
        redis_server.stop()
        result.duration_s = time.monotonic() - started
        if "back to baseline" in result.phases:
            _phase(result, "stop", mark)
    return result


def persisted(redis_url: str, users: list[str]) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    """What Redis holds at the end, per user: the sequence numbers in the history (read
    with the service's own Store), and those still waiting in the mailbox or pending
    (none, once every client has caught up)."""
    store = Store(redis_url, pool_size=2, block_s=1.0)
    kept, queued = {}, {}
    try:
        for user in users:
            keys = user_keys(user, MAILBOX_TEMPLATE)
            entries, _ = store.read_after(keys, "0-0", 1_000_000)
            kept[user] = {_seq(entry.data) for entry in entries}
            waiting = store.redis.lrange(keys.mailbox, 0, -1) + store.redis.lrange(
                keys.pending, 0, -1
            )
            queued[user] = {_seq(raw.decode()) for raw in waiting}
    finally:
        store.close()
    return kept, queued


def _seq(payload: str) -> int:
    return int(payload.split(" ", 1)[0])


def _phase(result: ChaosResult, name: str, since: float) -> float:
    now = time.monotonic()
    result.phases[name] = round(now - since, 1)
    return now


def plan_fat(plan: LoadPlan) -> set[str]:
    return {user for user, _, _ in plan.slow}


def _all_connected(load: LoadProcess, clients: int):
    status = load.ask(("status",), 30)
    return status["connected"] == clients, status


def analyse(
    records: list[dict],
    produced: ProducerResult,
    users: list[str],
    kept: dict[str, set[int]],
    queued: dict[str, set[int]],
    result: ChaosResult,
) -> dict:
    """Lost, reordered and duplicated messages over every client, and latency.

    A message a client lacks goes in one of four boxes: stuck (still in the mailbox or
    pending when the run ended: never moved), lost by Redis (acknowledged to the producer,
    yet neither queued nor in the user's history: Redis dropped the write; under
    `everysec` that is the price of its SIGKILL, counted apart, under `always` a loss like
    any other), skipped at a resume (the gap ends exactly where a new connection of that
    client began: the service resumed it past its cursor), or lost otherwise."""
    expected = produced.expected_per_user(users)
    boxes: dict[str, set] = {
        "stuck": set(),
        "redis": set(),
        "skipped_on_resume": set(),
        "other": set(),
    }
    missed, reorders, latencies, incomplete = 0, [], [], []
    for record in records:
        user = record["user"]
        missing = set(range(expected[user])) - set(record["seqs"])
        missed += len(missing)
        if missing:
            incomplete.append(_describe(record, missing))
        resumed_at = set(record["session_firsts"])
        for run in _runs(missing):
            for seq in run:
                if seq in queued[user]:
                    box = "stuck"
                elif seq not in kept[user]:
                    box = "redis"
                elif run[-1] + 1 in resumed_at:
                    box = "skipped_on_resume"
                else:
                    box = "other"
                boxes[box].add((user, seq))
        reorders += [(user, *pair) for pair in record["reorders"]]
        if record["kind"] == "regular":
            latencies += record["latencies_ms"]
    latencies.sort()
    if result.config.fsync != "everysec":  # only everysec may drop acknowledged writes
        boxes["other"] |= boxes.pop("redis")
        boxes["redis"] = set()
    lost = boxes["skipped_on_resume"] | boxes["other"]
    dropped_by_redis = sum(len(set(range(expected[u])) - kept[u]) for u in users)
    return {
        "deliveries_expected": sum(expected[r["user"]] for r in records),
        "deliveries_missed": missed,
        "incomplete_clients": incomplete[:20],
        "lost": len(lost),
        "lost_skipped_on_resume": len(boxes["skipped_on_resume"]),
        "lost_stuck_in_mailbox": len(boxes["stuck"]),
        "lost_other": len(boxes["other"]),
        "lost_examples": sorted(lost)[:10],
        "lost_to_redis_sigkill": len(boxes["redis"]),
        "not_in_redis_at_end": dropped_by_redis,
        "still_queued_at_end": sum(len(q) for q in queued.values()),
        "reordered": len(reorders),
        "reorder_examples": reorders[:10],
        "dup_ids_across_reconnects": sum(r["dup_ids_across_reconnects"] for r in records),
        "dup_ids_same_connection": sum(r["dup_ids_same_connection"] for r in records),
        "dup_seqs": sum(r["dup_seqs"] for r in records),
        "resets": sum(r["resets"] for r in records),
        "reconnects": sum(r["reconnects"] for r in records),
        "idle_timeouts": sum(r["idle_timeouts"] for r in records),
        "refusals": _sum_counts(r["refusals"] for r in records),
        "closes": _sum_counts(r["closes"] for r in records),
        "latency_ms": _percentiles(latencies),
    }


def _runs(numbers: set[int]) -> list[list[int]]:
    """Sorted runs of consecutive numbers: {1, 2, 3, 7} -> [[1, 2, 3], [7]]."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return runs


def _describe(record: dict, missing: set[int]) -> str:
    """One incomplete client in a line: who, how it connected, what it lacks."""
    ranges = _runs(missing)
    spans = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in ranges[:5])
    return (
        f"{record['kind']} {record['transport']} of {record['user']}: missing {len(missing)} "
        f"({spans}), got {len(record['seqs'])}, sessions {record['sessions']} "
        f"starting at {record['session_firsts'][:8]}, "
        f"closes {record['closes']}, refusals {record['refusals']}"
    )


def _sum_counts(counts) -> dict:
    total: dict = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return total


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {}

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, math.floor(q * len(values)))], 1)

    return {
        "p50": at(0.5),
        "p99": at(0.99),
        "max": round(values[-1], 1),
        "mean": round(statistics.fmean(values), 1),
    }


def back_to_baseline(service: Service, redis_port: int, baseline: dict) -> dict:
    """Wait for every worker to be idle and back to its baseline; what was seen either way."""
    since = time.time()
    ok, seen = poll(lambda: _idle(service, redis_port, since, baseline), BASELINE_TIMEOUT_S, 0.5)
    summary = {
        "ok": ok,
        "greenlets": {pid: s["greenlets"] for pid, s in seen["stats"].items()},
        "greenlet_kinds": {pid: s.get("greenlet_kinds") for pid, s in seen["stats"].items()},
        "connections": {pid: s["connections"] for pid, s in seen["stats"].items()},
        "fds": {pid: asdict(d) for pid, d in seen["fds"].items()},
        "redis_clients": seen["redis"],
    }
    if not ok:
        summary["why"] = (
            f"greenlets {summary['greenlets']} (baseline {baseline['greenlets']}), "
            f"connections {summary['connections']}, fds {summary['fds']} "
            f"(baseline other {baseline['other_fds']}), redis {summary['redis_clients']}"
        )
    return summary


def worker_health(service: Service, runner: FaultRunner) -> dict:
    """Wedged workers: a stats file left unrefreshed, an unhealthy in-process /healthz, a
    refused /healthz, or gunicorn's own WORKER TIMEOUT."""
    answers = [_answers(service.base_url + "/healthz") for _ in range(20)]
    log = service.logs()
    wedged = {
        pid: round(stale, 1) for pid, stale in runner.max_stale.items() if stale > STALE_STATS_S
    }
    if runner.unhealthy:
        wedged["unhealthy"] = runner.unhealthy
    if any(a != 200 for a in answers):
        wedged["healthz"] = answers
    if "WORKER TIMEOUT" in log:
        wedged["timeouts"] = log.count("WORKER TIMEOUT")
    return {
        "wedged": wedged,
        "max_stats_age_s": round(max(runner.max_stale.values(), default=0.0), 2),
        "booted": log.count("Booting worker"),
    }


__all__ = ["QUICK", "ChaosConfig", "ChaosResult", "run_chaos"]
