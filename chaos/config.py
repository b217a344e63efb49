"""What a chaos run is made of: its sizes (`ChaosConfig`, and `QUICK` for the tests), the
service's settings, and the bounds its workers must get back within."""

from __future__ import annotations

from dataclasses import dataclass

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
