# ruff: noqa: RUF001
"""Reading a figure out of the bench's results (its JSON), formatting it for the table,
and the reference figures earlier runs and issues measured."""

from __future__ import annotations

PUSH, PEER = "push-sse", "flask-sse"
#: Seconds the probe message had to reach every stream (run.py's PROBE_S).
PROBE_S = 5.0


def get(results: dict, *path):
    node = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def span(stat: dict | None, digits: int = 0, unit: str = "") -> str:
    """`median (min-max)` of a summary."""
    if not stat:
        return "n/a"
    return (
        f"**{fmt(stat['median'], digits, unit)}** "
        f"({fmt(stat['min'], digits)}–{fmt(stat['max'], digits)})"
    )


def ratio(a: dict | None, b: dict | None, digits: int = 2) -> str:
    if not a or not b or not b["median"]:
        return "n/a"
    return f"{a['median'] / b['median']:.{digits}f}×"


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "n/a"
    return "**met**" if ok else "**not met**"


#: What issue 4 measured Flask-SSE at, on the machine it was written on: 200 users x 5
#: tabs under gunicorn with 2 gevent workers.
REFERENCE_PEER_DELIVERIES_PER_S = 45_000
REFERENCE_PEER_US_PER_DELIVERY = 25.0
#: The last full run before the mailbox watcher (2026-11-27): 200 users x 5 tabs.
LAST_RATIO_5TABS = 7.72
LAST_US_5TABS = 7.7
#: Issue 17's bounds.
WATCHER_CONNECTIONS_PER_WORKER = 20
CAPACITY_KB_PER_STREAM = 25.0
P50_SLACK_MS = 0.2


def shape(results: dict, tabs: int) -> dict:
    return get(results, "scenarios", "shapes", f"x{tabs}") or {}


def tp_of(results: dict, tabs: int, label: str) -> dict:
    return get(shape(results, tabs), label, "throughput") or {}


def at(stages: dict | None, streams: int):
    """A stage's figure: JSON keeps its keys as text, the bench's own dict as numbers."""
    if not stages:
        return None
    return stages.get(streams, stages.get(str(streams)))


def lat_of(results: dict, tabs: int, label: str, streams: int) -> dict:
    return at(get(shape(results, tabs), label, "latency"), streams) or {}


def machine_speed(results: dict) -> list[str]:
    """How fast this machine ran the peer against issue 4's reference measurement, so
    that absolute figures can be read against it."""
    peer_rate = get(tp_of(results, 5, PEER), "deliveries_per_s", "median")
    peer_us = get(tp_of(results, 5, PEER), "app_cpu_us_per_delivery", "median")
    if not (peer_rate and peer_us):
        return []
    slower = peer_us / REFERENCE_PEER_US_PER_DELIVERY
    return [
        "",
        f"**This machine's speed.** Here Flask-SSE delivered {peer_rate:,.0f}/s at "
        f"{peer_us:.1f} µs of app CPU each for 200 users × 5 tabs; issue 4 measured it at "
        f"about {REFERENCE_PEER_DELIVERIES_PER_S:,}/s and {REFERENCE_PEER_US_PER_DELIVERY:g} µs "
        f"on its reference machine, so this one did the same work {slower:.1f}× slower. The "
        "ratios against Flask-SSE in the same run are the fair comparison.",
    ]
