"""Scenario `backlog`: 100 messages for each of 1,000 offline users, then one stream
each; how fast the history reaches them (push only: pub/sub keeps nothing)."""

from __future__ import annotations

import time

from load_clients import DELIVERIES
from rig import Bench, cpu_seconds, log

from tests.harness.stats import summary


def run(bench: Bench) -> dict:
    plan = bench.plan
    server = bench.start_server("push", "backlog-push")
    reps = []
    total = plan.bl_users * plan.bl_per_user
    try:
        for rep in range(plan.reps):
            users = [f"bl{rep}x{i}" for i in range(plan.bl_users)]
            bench.producer.run("preload", users=users, per_user=plan.bl_per_user)
            d0 = bench.generators.total(DELIVERIES)
            app0 = cpu_seconds(server.worker_processes)
            gen0 = cpu_seconds(bench.generators.ps)
            start = time.monotonic()
            bench.generators.open(server, "sse", users, 30)
            goal = d0 + total
            done = bench.wait(lambda g=goal: bench.generators.total(DELIVERIES) >= g, 60, 0.02)
            seconds = time.monotonic() - start
            got = bench.generators.total(DELIVERIES) - d0
            app1 = cpu_seconds(server.worker_processes)
            gen1 = cpu_seconds(bench.generators.ps)
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
            bench.generators.call("close_all")
            time.sleep(0.3)
    finally:
        bench.stop_server(server)
    result = {"messages": total, "users": plan.bl_users, "reps": reps}
    for key in ("seconds", "deliveries_per_s", "app_cpu_us_per_delivery"):
        result[key] = summary([r[key] for r in reps])
    log(f"backlog push: {total:,} messages in {result['seconds']['median']:.2f} s")
    return result
