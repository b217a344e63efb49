"""What a benchmark run measures and at what sizes: the plans (full, quick), the
scenarios, the systems under test, and the server settings they all share."""

from __future__ import annotations

from dataclasses import dataclass

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
