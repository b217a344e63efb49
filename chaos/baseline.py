"""The workers' health, before and after a chaos run: the idle baseline taken after a
warm-up (greenlets, descriptors, Redis clients of workers with nothing to do), the return
to it once the clients are gone (nothing leaked), and whether any worker wedged."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import asdict

from clients import open_sse

from chaos.config import BASELINE_TIMEOUT_S, IDLE_REDIS_FDS_MAX
from chaos.faults import FaultRunner
from chaos.procs import STALE_STATS_S, Service, descriptors, redis_clients
from tests.harness.waits import poll


def _answers(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except OSError:
        return 0


def warm_up(service: Service, redis_port: int) -> dict:
    """Serve a stream on every worker (their hubs start lazily), let go, measure the idle
    baseline: greenlets, descriptors and Redis clients of workers with nothing to do."""
    streams = []
    try:
        for i in range(64):
            stream = open_sse(service.base_url, {"user_id": f"warm{i}"})
            stream.wait_for_comment("connected")
            streams.append(stream)
            stats = service.worker_stats()
            if len(stats) == service.workers and all(s["hub_started"] for s in stats.values()):
                break
    finally:
        for stream in streams:
            stream.close()
    since = time.time()
    ok, idle = poll(_steady(lambda: _idle(service, redis_port, since)), BASELINE_TIMEOUT_S, 0.5)
    if not ok:
        raise AssertionError(f"the workers did not settle after warm-up: {idle}")
    return {
        "greenlets": max(s["greenlets"] for s in idle["stats"].values()),
        "greenlet_kinds": {pid: s.get("greenlet_kinds") for pid, s in idle["stats"].items()},
        "other_fds": max(d.other for d in idle["fds"].values()),
        "redis_fds": max(d.redis for d in idle["fds"].values()),
        "rss_kb": {pid: d.rss_kb for pid, d in idle["fds"].items()},
        "redis_clients": idle["redis"],
    }


def _steady(check):
    """`check`, made to pass only when two stats samples in a row agree on the greenlets:
    the first idle moment after the streams close still has greenlets on their way out."""
    previous: dict = {}

    def steady():
        ok, seen = check()
        counts = {pid: (s["time"], s["greenlets"]) for pid, s in seen["stats"].items()}
        agreed = bool(previous) and all(
            pid in previous and previous[pid][0] != t and previous[pid][1] == g
            for pid, (t, g) in counts.items()
        )
        if ok:
            previous.clear()
            previous.update(counts)
        return ok and agreed, seen

    return steady


def _idle(service: Service, redis_port: int, since: float, baseline: dict | None = None):
    """(every worker idle and, given a baseline, back to it; what was seen)."""
    stats = service.worker_stats()
    fds = {pid: descriptors(pid, service.port, redis_port) for pid in stats}
    seen = {
        "stats": stats,
        "fds": fds,
        "redis": redis_clients(f"redis://127.0.0.1:{redis_port}/0"),
    }
    fresh = len(stats) == service.workers and all(s["time"] > since for s in stats.values())
    idle = all(s["connections"] == 0 and s["users"] == 0 for s in stats.values())
    idle = idle and all(d.clients == 0 for d in fds.values()) and seen["redis"]["movers"] == 0
    if baseline is not None:
        idle = idle and all(s["greenlets"] <= baseline["greenlets"] for s in stats.values())
        idle = idle and all(d.other <= baseline["other_fds"] for d in fds.values())
        idle = idle and all(d.redis <= IDLE_REDIS_FDS_MAX for d in fds.values())
    return fresh and idle, seen


def back_to_baseline(service: Service, redis_port: int, baseline: dict) -> dict:
    """Wait for every worker to be idle and back to its baseline; what was seen either way."""
    since = time.time()
    ok, seen = poll(lambda: _idle(service, redis_port, since, baseline), BASELINE_TIMEOUT_S, 0.5)
    summary = {
        "ok": ok,
        "greenlets": {pid: s["greenlets"] for pid, s in seen["stats"].items()},
        "greenlet_kinds": {pid: s.get("greenlet_kinds") for pid, s in seen["stats"].items()},
        "connections": {pid: s["connections"] for pid, s in seen["stats"].items()},
        "fds": {pid: asdict(d) for pid, d in seen["fds"].items()},
        "redis_clients": seen["redis"],
    }
    if not ok:
        summary["why"] = (
            f"greenlets {summary['greenlets']} (baseline {baseline['greenlets']}), "
            f"connections {summary['connections']}, fds {summary['fds']} "
            f"(baseline other {baseline['other_fds']}), redis {summary['redis_clients']}"
        )
    return summary


def worker_health(service: Service, runner: FaultRunner) -> dict:
    """Wedged workers: a stats file left unrefreshed, an unhealthy in-process /healthz, a
    refused /healthz, or gunicorn's own WORKER TIMEOUT."""
    answers = [_answers(service.base_url + "/healthz") for _ in range(20)]
    log = service.logs()
    wedged = {
        pid: round(stale, 1) for pid, stale in runner.max_stale.items() if stale > STALE_STATS_S
    }
    if runner.unhealthy:
        wedged["unhealthy"] = runner.unhealthy
    if any(a != 200 for a in answers):
        wedged["healthz"] = answers
    if "WORKER TIMEOUT" in log:
        wedged["timeouts"] = log.count("WORKER TIMEOUT")
    return {
        "wedged": wedged,
        "max_stats_age_s": round(max(runner.max_stale.values(), default=0.0), 2),
        "booted": log.count("Booting worker"),
    }
