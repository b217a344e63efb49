"""Scenario `connections`: idle SSE and WebSocket streams ramped to 20,000 (5 tabs a user),
a fresh server per ramp: what a stream costs in worker RSS, Redis memory and clients.
`run_ramps` serves the capacity scenario too."""

from __future__ import annotations

import random
import time

from load_clients import FAILED
from plans import PROBE_S, SYSTEMS
from rig import Bench, cpu_seconds, log
from system import Server

from tests.harness.stats import summary


def run(bench: Bench) -> dict:
    """Idle streams ramped to conn_total, conn_tabs per user, a fresh server per rep."""
    plan = bench.plan
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
        result = run_ramps(bench, label, system, transport, watch, ramps, plan.conn_max_s)
        result.update(target=plan.conn_total, users=n_users)
        out[label] = result
    return out


def run_ramps(
    bench: Bench,
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
            server = bench.start_server(
                system, f"ramp-{label}-{rep}", launched=following, **options
            )
            following = None
            t1 = time.monotonic()
            reps.append(connections_rep(bench, server, transport, users, tabs, label, rep, max_s))
            t2 = time.monotonic()
            if rep + 1 < len(ramps):
                following = bench.launch_server(system, f"ramp-{label}-{rep + 1}", **options)
            bench.stop_server(server, flush=following is None)
            server = None
            reps[-1]["phase_s"] = {
                "start": round(t1 - t0, 2),
                "measure": round(t2 - t1, 2),
                "stop": round(time.monotonic() - t2, 2),
            }
    finally:
        for leftover in (server, following):
            if leftover is not None:
                bench.stop_server(leftover)
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
    bench: Bench,
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
    plan = bench.plan
    rss0 = server.rss()
    mem0 = int(bench.info("memory")["used_memory"])
    spy = bench.profile(server, f"connections-{label}", 20) if rep == 0 else []
    g0, a0 = cpu_seconds(bench.generators.ps), cpu_seconds(server.worker_processes)
    live, ramp_s, spent, samples = bench.open_streams(server, transport, tabs, max_s)
    gen_busy = cpu_seconds(bench.generators.ps) - g0
    app_busy = cpu_seconds(server.worker_processes) - a0
    time.sleep(plan.conn_settle_s)
    rss = server.rss()
    mem = int(bench.info("memory")["used_memory"])
    clients = bench.redis_clients() - bench.bench_clients
    if server.system != "push":
        # Flask-SSE holds a Redis connection per stream and nothing else; the warm-up
        # streams it has not noticed are gone (it never writes to them) do not count.
        clients -= bench.peer_idle_clients
    open_now = bench.live(server, tabs)
    held, online = bench.probe(server, users, len(tabs), PROBE_S)
    failed = bench.generators.total(FAILED)
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
