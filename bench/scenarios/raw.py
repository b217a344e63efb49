"""Scenario `raw`: the limit of Redis itself, LPUSH + BLMOVE from a bare redis-py
client, one per round trip and pipelined: what no service on top of it can beat."""

from __future__ import annotations

from rig import Bench, cpu_seconds, log

from tests.harness.stats import summary


def run(bench: Bench) -> dict:
    plan = bench.plan
    result = {}
    for label, batch in (
        ("redis-py loop, 1 per round trip", 1),
        ("pipelined, 100 per round trip", 100),
    ):
        reps = []
        for _ in range(plan.reps):
            cpu0 = cpu_seconds([bench.producer.ps])
            redis0 = cpu_seconds([bench.redis_ps])
            r = bench.producer.run("raw", duration=plan.raw_s, batch=batch)
            cpu1 = cpu_seconds([bench.producer.ps])
            redis1 = cpu_seconds([bench.redis_ps])
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
