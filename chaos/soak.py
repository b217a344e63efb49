"""`make soak` (not in CI): 5,000 connections for 30 minutes with steady traffic and churn.

    .venv/bin/python chaos/soak.py                                # the real thing
    .venv/bin/python chaos/soak.py --minutes 2 --sample-s 10 --connections 500 --out-dir /tmp/s

Every `--sample-s` seconds (a minute by default) it appends one row per worker to
soak.csv, flushed at once so that a crash keeps every sample taken: RSS, open
descriptors, live greenlets, connections, plus Redis's clients and memory; at the end
it plots them to soak.png (when matplotlib, chaos/requirements.txt, is installed). It
fails (exit 1) if any of RSS, descriptors, greenlets per worker or Redis clients grew
by more than 5 % over the last 20 minutes (the last two thirds of a shorter run), or if
a client missed a message.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

CHAOS = Path(__file__).resolve().parent
ROOT = CHAOS.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import redis  # noqa: E402

from chaos.analysis import analyse, persisted  # noqa: E402
from chaos.baseline import warm_up  # noqa: E402
from chaos.clients import Churn  # noqa: E402
from chaos.config import SERVICE_SETTINGS, ChaosConfig  # noqa: E402
from chaos.load import LoadProcess  # noqa: E402
from chaos.loadproc import LoadPlan  # noqa: E402
from chaos.procs import (  # noqa: E402
    Service,
    descriptors,
    redis_clients,
    start_redis,
    stop_run,
)
from chaos.producer import Producer  # noqa: E402
from chaos.result import ChaosResult  # noqa: E402
from chaos.sockets import Slowness  # noqa: E402
from tests.harness.limits import raise_nofile  # noqa: E402
from tests.harness.waits import poll  # noqa: E402

#: The most a measure may grow over the window before the soak fails.
MAX_GROWTH = 0.05
#: The window growth is judged over: the last 20 minutes, or two thirds of a short run.
WINDOW_S = 20 * 60
FIELDS = [
    "elapsed_s",
    "pid",
    "rss_kb",
    "fds",
    "greenlets",
    "connections",
    "users",
    "redis_clients",
    "redis_used_kb",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second")
    parser.add_argument("--churn-per-s", type=float, default=3.0)
    parser.add_argument("--sample-s", type=float, default=60.0)
    parser.add_argument("--out-dir", type=Path, default=CHAOS)
    parser.add_argument("--seed", type=int, default=8)
    return parser.parse_args(argv)


def soak_plan(args, port: int, master_pid: int, duration_s: float) -> LoadPlan:
    rng = random.Random(args.seed)
    users = [f"s{i:04d}" for i in range(args.users)]
    per_user = max(1, args.connections // args.users)
    churn = [
        Churn(
            start_s=rng.uniform(0, duration_s),
            user=rng.choice(users),
            transport=rng.choice(("sse", "ws")),
            style=(style := rng.choice(("request", "bytes", "time"))),
            amount={"request": rng.randint(1, 300), "bytes": rng.randint(1, 5000)}.get(
                style, rng.uniform(0.0, 3.0)
            ),
            reset=rng.random() < 0.5,
            from_start=False,
        )
        for _ in range(int(args.churn_per_s * duration_s))
    ]
    return LoadPlan(
        port=port,
        users=users,
        transports=[
            [("sse", "ws")[(u + c) % 2] for c in range(per_user)] for u in range(len(users))
        ],
        slow=[],
        slowness=Slowness(),
        churn=churn,
        silent_cuts=[],
        silent_cut_at_s=0.0,
        idle_s=15.0,
        master_pid=master_pid,
        lifetime_s=duration_s + 900,
        seed=args.seed,
    )


def sample(service: Service, redis_url: str, redis_port: int, elapsed: float) -> list[dict]:
    """One row per worker: what it holds now."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        used_kb = client.info("memory")["used_memory"] // 1024
    finally:
        client.close()
    clients = sum(redis_clients(redis_url).values())
    rows = []
    for pid, stats in service.worker_stats().items():
        fds = descriptors(pid, service.port, redis_port)
        rows.append(
            {
                "elapsed_s": round(elapsed, 1),
                "pid": pid,
                "rss_kb": fds.rss_kb,
                "fds": fds.total,
                "greenlets": stats["greenlets"],
                "connections": stats["connections"],
                "users": stats["users"],
                "redis_clients": clients,
                "redis_used_kb": used_kb,
            }
        )
    return rows


def growth(rows: list[dict], duration_s: float) -> dict[str, float]:
    """Relative growth of each measure between the first and last sample of the window."""
    start = max(0.0, duration_s - min(WINDOW_S, duration_s * 2 / 3))
    window = [row for row in rows if row["elapsed_s"] >= start]
    found = {}
    series: dict[str, list[tuple[float, float]]] = {}
    for row in window:
        for measure in ("rss_kb", "fds", "greenlets"):
            series.setdefault(f"{measure}[{row['pid']}]", []).append(
                (row["elapsed_s"], row[measure])
            )
        series.setdefault("redis_clients", []).append((row["elapsed_s"], row["redis_clients"]))
    for name, points in series.items():
        points.sort()
        first, last = points[0][1], points[-1][1]
        found[name] = (last - first) / first if first else 0.0
    return found


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    panels = [
        ("rss_kb", "RSS per worker (MB)", 1 / 1024),
        ("fds", "open descriptors per worker", 1),
        ("greenlets", "live greenlets per worker", 1),
        ("redis_clients", "Redis clients", 1),
    ]
    pids = sorted({row["pid"] for row in rows})
    for axis, (measure, title, scale) in zip(axes.flat, panels, strict=True):
        for pid in pids if measure != "redis_clients" else pids[:1]:
            points = [(r["elapsed_s"] / 60, r[measure] * scale) for r in rows if r["pid"] == pid]
            label = f"worker {pid}" if measure != "redis_clients" else "all"
            axis.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=label)
        axis.set_title(title)
        axis.set_xlabel("minutes")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    raise_nofile()
    duration_s = args.minutes * 60
    args.out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="push-soak-"))
    redis_server = start_redis(workdir / "redis", "everysec")
    service = load = producer = None
    samples = Samples(args.out_dir / "soak.csv")
    try:
        settings = dict(SERVICE_SETTINGS, PUSH_HEARTBEAT_S="5", PUSH_WS_PING_S="10")
        settings["PUSH_WORKER_CONNECTIONS"] = "20000"
        service = Service(workdir, redis_server.url, CHAOS_STATS_INTERVAL_S="5", **settings)
        service.start()
        warm_up(service, redis_server.port)
        plan = soak_plan(args, service.port, service.master_pid, duration_s)
        load = LoadProcess(plan).start()
        total = len(plan.users) * len(plan.transports[0])
        _, status = poll(lambda: _connected(load, total), 180, 1.0)
        print(f"{status['connected']} of {total} connections open", flush=True)
        t0 = time.time() + 1
        messages = int(args.rate * duration_s)
        producer = Producer(redis_server.url, plan.users, {}, messages, args.rate, t0)
        producer.start()
        load.ask(("go", t0), 30)
        for k in range(int(duration_s // args.sample_s) + 1):
            moment = t0 + k * args.sample_s
            time.sleep(max(0.0, moment - time.time()))  # pacing: one sample a period
            samples.add(sample(service, redis_server.url, redis_server.port, time.time() - t0))
            print(f"minute {(time.time() - t0) / 60:.1f}: {samples.rows[-1]}", flush=True)
        producer.join(timeout=120)
        outcome = load.ask(("finish", producer.result.expected_per_user(plan.users), 120), 300)
        kept, queued = persisted(redis_server.url, plan.users)
        config = ChaosConfig(name="soak", fsync="everysec")
        delivery = analyse(
            outcome["records"], producer.result, plan.users, kept, queued, ChaosResult(config)
        )
    finally:
        stop_run(producer, load, service, redis_server)
        samples.close()
    return report(samples.rows, delivery, duration_s, args.out_dir)


def _connected(load: LoadProcess, total: int):
    status = load.ask(("status",), 60)
    return status["connected"] >= total, status


class Samples:
    """soak.csv, written as the run goes: the header at once, each sample's rows appended
    and flushed, so a run that dies keeps every sample it took."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict] = []
        self.file = open(path, "w", newline="")  # noqa: SIM115 - open for the whole run
        self.writer = csv.DictWriter(self.file, FIELDS)
        self.writer.writeheader()
        self.file.flush()

    def add(self, rows: list[dict]) -> None:
        self.rows += rows
        self.writer.writerows(rows)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def report(rows: list[dict], delivery: dict, duration_s: float, out_dir: Path) -> int:
    try:
        plot(rows, out_dir / "soak.png")
        plotted = f" and {out_dir / 'soak.png'}"
    except ImportError:
        plotted = " (no soak.png: pip install -r chaos/requirements.txt for matplotlib)"
    grown = growth(rows, duration_s)
    too_much = {name: round(g, 3) for name, g in grown.items() if g > MAX_GROWTH}
    print(f"growth over the window: { {k: round(v, 3) for k, v in grown.items()} }")
    print(
        f"lost {delivery['lost']}, reordered {delivery['reordered']}, reconnects "
        f"{delivery['reconnects']}, latency {delivery['latency_ms']}"
    )
    print(f"written {out_dir / 'soak.csv'}{plotted}")
    if too_much or delivery["lost"] or delivery["reordered"]:
        print(f"FAIL: grew more than {MAX_GROWTH:.0%}: {too_much or 'nothing'}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
