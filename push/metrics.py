"""Prometheus metrics, summed over gunicorn's workers (prometheus-client's multiprocess mode).

gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
the workers start, and removes it on exit; under `python app.py` the metrics
are this process's own. `push_mailbox_wait_seconds` is not offered: a raw LPUSH
carries no time, so how long a message waited in the mailbox cannot be known.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from push.storage.drops import IDEMPOTENCY_EVICTED as RECORDS_EVICTED
from push.storage.drops import count_with

OPEN_CONNECTIONS = Gauge(
    "push_open_connections",
    "Open streams, by transport",
    ["transport"],
    multiprocess_mode="livesum",
)
CONNECTIONS = Counter(
    "push_connections",
    "Stream requests, by transport and result",
    ["transport", "result"],
)
CLOSED = Counter(
    "push_connections_closed",
    "Streams ended, by transport and why (client_left, token_expired, revoked, ...)",
    ["transport", "reason"],
)
MOVED = Counter("push_messages_moved", "Messages moved from mailboxes into histories")
DELIVERED = Counter(
    "push_messages_delivered", "Messages written to a connection, by transport", ["transport"]
)
DEAD_LETTERS = Counter("push_dead_letters", "Messages moved to a dead-letter list")
EXPIRED = Counter(
    "push_messages_expired",
    "Messages dropped unread from a mailbox, by why: mailbox_full (the oldest past "
    "PUSH_MAILBOX_MAX), mailbox_ttl (not written for PUSH_MAILBOX_TTL_S)",
    ["reason"],
)
IDEMPOTENCY_EVICTED = Counter(
    "push_idempotency_evicted",
    "Idempotency records forgotten before their 24 h, the oldest of an API key past "
    "PUSH_IDEMPOTENCY_MAX_BYTES (a retry of one queues again)",
)
RESETS = Counter("push_resets", "Resets sent to clients whose cursor was older than the history")
DELIVERY_SECONDS = Histogram(
    "push_delivery_seconds",
    "From a message entering the history to its write on a socket "
    "(per write, the oldest message in it)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)
ACKS_IGNORED = Counter(
    "push_acks_ignored",
    "Acks not recorded: of an id never written to the connection (not_delivered), "
    "or not newer than its last ack (not_newer)",
    ["reason"],
)
AUTH_HOOK = Counter(
    "push_auth_hook",
    "Calls to the site's auth hook (PUSH_AUTH_URL), by result "
    "(admitted, refused, bad_status, malformed, timeout, unreachable)",
    ["result"],
)
REDIS_ERRORS = Counter("push_redis_errors", "Redis errors, by the part that met them", ["part"])
ACTIVE_USERS = Gauge(
    "push_active_users", "Users with a mover in a worker", multiprocess_mode="livesum"
)

#: Results of a stream request, for push_connections_total.
RESULT_BY_STATUS = {
    400: "rejected_request",
    401: "rejected_auth",
    403: "rejected_origin",
    429: "rejected_limit",
}


def exposition() -> tuple[bytes, str]:
    """The metrics text, summed over workers when running under gunicorn."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def closed_label(reason: str | None) -> str:
    """push_connections_closed_total's reason label of a connection's closing reason."""
    return (reason or "client left").replace(" ", "_")


def _count_drops(what: str, count: int) -> None:
    """The service counts what push.storage.drops reports (a producer process only logs it)."""
    if what == RECORDS_EVICTED:
        IDEMPOTENCY_EVICTED.inc(count)
    else:
        EXPIRED.labels(what).inc(count)


count_with(_count_drops)
