"""Scenario `capacity`: 36,000 users with one stream each on 2 workers, push with the
mailbox watcher only (Flask-SSE needs two descriptors a stream, blocking movers a Redis
connection a user)."""

from __future__ import annotations

from plans import CAPACITY_WORKER_CONNECTIONS, SYSTEMS
from rig import Bench

from scenarios.connections import run_ramps


def run(bench: Bench) -> dict:
    """cap_users users with one stream each, on the mailbox watcher: 18,000 streams a
    worker at the full size, under the 20,000 open files a process may have here."""
    plan = bench.plan
    if not plan.cap_users or "push-sse" not in SYSTEMS:
        return {}
    ramps = [[f"k{rep}x{i}" for i in range(plan.cap_users)] for rep in range(plan.cap_reps)]
    result = run_ramps(
        bench,
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
