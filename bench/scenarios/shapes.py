"""Scenario `shapes`: each system with one stream per user (what push.js makes) and with
five; its streams opened in stages, each stage measured before the next opens: light-load
latency (a paced producer) and throughput (the producer keeping messages in flight)."""

from __future__ import annotations

import random
import time

from load_clients import DELIVERIES, LOST
from plans import PROBE_S, SHAPES, SYSTEMS
from rig import Bench, cpu_seconds, log
from system import Server

from tests.harness.stats import percentiles, summary

#: The latency percentiles reported, of every delivery in a repetition.
LATENCY_QS = (0.50, 0.90, 0.99)


def run(bench: Bench) -> dict:
    """Each system with one stream per user (what push.js makes) and with five: a
    server per system and shape, its streams opened in stages, each stage measured
    before the next opens: light-load latency at lat_small and lat_large streams, and
    throughput at tp_users_1tab users x 1 or tp_users_5tabs users x 5."""
    plan = bench.plan
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
            server = bench.start_server(system, f"shape{tabs}-{label}", watch=watch)
            try:
                shape[label] = shape_pass(bench, server, label, transport, tabs, stages)
            except RuntimeError as error:
                log(f"shape {tabs} {label} failed: {error}")
                shape[label] = {"error": repr(error)}
            finally:
                bench.stop_server(server)
        out[f"x{tabs}"] = shape
    return out


def shape_pass(
    bench: Bench, server: Server, label: str, transport: str, tabs: int, stages: list
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
            live, _, _, _ = bench.open_streams(server, transport, new_tabs, 60, target=streams)
            opened = streams
            if live < streams:
                log(f"{label} x{tabs}: only {live:,} of {streams:,} streams live")
            time.sleep(0.5)
            # Every stream gets one message first (Flask-SSE's heads come with it).
            held, _ = bench.probe(server, users[: streams // tabs], streams, PROBE_S)
            result.setdefault("held", {})[streams] = held
        result["redis_clients"][streams] = bench.redis_clients() - bench.bench_clients
        result["rss_mb"][streams] = server.rss() / 2**20
        stage_users = users[: streams // tabs]
        if kind == "latency":
            lat = latency_reps(bench, server, stage_users, transport)
            lat["streams"] = streams
            result["latency"][streams] = lat
        else:
            tp = throughput_reps(bench, server, stage_users, tabs, f"{label} x{tabs}")
            tp["streams"] = streams
            tp["users"] = len(stage_users)
            result["throughput"] = tp
    return result


def settle_deliveries(bench: Bench, quiet_s: float = 0.3, limit_s: float = 5.0) -> None:
    """Wait until no delivery arrived for `quiet_s` (a late message counts too)."""
    deadline = time.monotonic() + limit_s
    last, quiet_since = bench.generators.total(DELIVERIES), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = bench.generators.total(DELIVERIES)
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return


def latency_reps(bench: Bench, server: Server, users: list[str], transport: str) -> dict:
    plan = bench.plan
    reps, samples = [], []
    for rep in range(plan.reps):
        spy = (
            bench.profile(server, f"latency-{server.system}-{len(users)}u", plan.lat_s)
            if rep == 0
            else []
        )
        bench.generators.call("latency", True)
        gen0 = cpu_seconds(bench.generators.ps)
        app0 = cpu_seconds(server.worker_processes)
        t0 = time.monotonic()
        r = bench.producer.run(
            "paced", system=server.system, users=users, rate=plan.lat_rate, duration=plan.lat_s
        )
        settle_deliveries(bench)
        gen1 = cpu_seconds(bench.generators.ps)
        app1 = cpu_seconds(server.worker_processes)
        wall = time.monotonic() - t0
        lat = bench.generators.latencies()
        bench.generators.call("latency", False)
        stats = percentiles(lat, LATENCY_QS, 1e6) or {}
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
    result["generator_cpu_pct_of_core"] = summary([r["generator_cpu_pct_of_core"] for r in reps])
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
    bench: Bench, server: Server, users: list[str], per_user_tabs: int, label: str
) -> dict:
    plan = bench.plan
    reps = []
    for rep in range(plan.reps):
        base = bench.generators.total(DELIVERIES)
        bench.producer.start(
            "saturate",
            system=server.system,
            users=users,
            tabs=per_user_tabs,
            window=plan.tp_inflight,
            batch=500,
            duration=plan.tp_warm_s + plan.tp_window_s + 0.2,
        )
        time.sleep(plan.tp_warm_s)
        spy = bench.profile(server, f"throughput-{label}", plan.tp_window_s) if rep == 0 else None
        bench.redis.config_resetstat()
        d0 = bench.generators.total(DELIVERIES)
        app0 = cpu_seconds(server.worker_processes)
        redis0 = cpu_seconds([bench.redis_ps])
        gen0 = cpu_seconds(bench.generators.ps)
        prod0 = cpu_seconds([bench.producer.ps])
        t0 = time.monotonic()
        time.sleep(plan.tp_window_s)
        d1 = bench.generators.total(DELIVERIES)
        t1 = time.monotonic()
        app1 = cpu_seconds(server.worker_processes)
        redis1 = cpu_seconds([bench.redis_ps])
        commands = bench.info("commandstats")
        gen1 = cpu_seconds(bench.generators.ps)
        prod1 = cpu_seconds([bench.producer.ps])
        sent = bench.producer.result()["sent"]
        # let what is in flight arrive before the next repetition
        expected = base + sent * per_user_tabs
        drained = bench.wait(lambda e=expected: bench.generators.total(DELIVERIES) >= e, 10)
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
                "lost_streams": bench.generators.total(LOST),
                # The costliest commands: (calls, microseconds in Redis) per delivery.
                "redis_commands_per_delivery": {
                    name.removeprefix("cmdstat_"): (
                        round(row["calls"] / max(1, d1 - d0), 3),
                        round(row["usec"] / max(1, d1 - d0), 2),
                    )
                    for name, row in sorted(commands.items(), key=lambda kv: -kv[1]["usec"])[:12]
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
