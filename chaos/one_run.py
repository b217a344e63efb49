"""One chaos run: Redis with AOF, gunicorn with 2 gevent workers, clients, a producer, faults.

    config = ChaosConfig(fsync="always")            # the full run `make chaos` does twice
    result = run_chaos(config, Path("/tmp/somewhere"))
    result.ok, result.problems()

Faults, at seeded random times while the producer pushes: SIGKILL of a random worker
(gunicorn replaces it), Redis restarts (SHUTDOWN and SIGKILL), churning clients that hang
up at random moments (mid-request, mid-frame, after a while; FIN or RST), slow consumers
that read a few bytes at a time from the start of their user's history until the outbox
limit cuts them, and connections cut silently by a TCP proxy. No other fault runs near a
silent cut, so the time each end takes to notice it is the heartbeats' doing alone.

Afterwards every client must have every message of its user, in order (under `everysec`,
messages Redis lost to its own SIGKILL are counted apart), and every worker must be back
to its idle baseline: no connection, user, greenlet or client socket left over, no mover
connection in Redis, and a stats file refreshed every second all along (not wedged).

Here the run is put together; its parts are apart: config.py (sizes, settings),
faults.py (what breaks the server side), load.py (the clients), analysis.py (what was
delivered), baseline.py (what leaked or wedged), result.py (the verdict).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from chaos.analysis import analyse, persisted
from chaos.baseline import back_to_baseline, warm_up, worker_health
from chaos.config import QUICK, SERVICE_SETTINGS, ChaosConfig
from chaos.faults import FaultRunner, fault_schedule
from chaos.load import LoadProcess, all_connected, load_plan, plan_fat
from chaos.procs import Service, start_redis, stop_run
from chaos.producer import Producer
from chaos.result import ChaosResult
from tests.harness.limits import raise_nofile
from tests.harness.waits import poll


def run_chaos(config: ChaosConfig, workdir: Path, say=print) -> ChaosResult:
    """Run one chaos run in `workdir` (Redis data, logs, stats); every process is stopped."""
    raise_nofile()
    started = time.monotonic()
    rng = random.Random(config.seed)
    result = ChaosResult(config)
    redis_server = start_redis(workdir / "redis", config.fsync)
    service = load = producer = None
    try:
        watch = "c000,c001"
        service = Service(
            workdir,
            redis_server.url,
            config.workers,
            CHAOS_WATCH_USERS=watch,
            PUSH_MAILBOX_WATCH=config.watch,
            **SERVICE_SETTINGS,
        ).start()
        result.baseline = warm_up(service, redis_server.port)
        mark = _phase(result, "start and warm up", started)
        plan = load_plan(config, service.port, service.master_pid, rng)
        load = LoadProcess(plan).start()
        clients = len(config.user_ids()) * config.clients_per_user
        ok, status = poll(lambda: all_connected(load, clients), 60, 0.5)
        if not ok:
            raise AssertionError(f"the clients did not all connect: {status}")
        mark = _phase(result, "connect the clients", mark)
        say(f"[{config.name}/{config.fsync}/{config.watch}] {clients} clients connected; producing")
        t0 = time.time() + 1.0
        users = config.user_ids()
        pads = {u: config.pad for u in users} | dict.fromkeys(plan_fat(plan), config.fat_pad)
        producer = Producer(redis_server.url, users, pads, config.messages, config.rate, t0)
        producer.start()
        load.ask(("go", t0), 30)
        result.faults = fault_schedule(config, rng)
        runner = FaultRunner(service, redis_server, result)
        runner.run(result.faults, t0, until=t0 + config.produce_s)
        producer.join(timeout=config.produce_s + 120)
        mark = _phase(result, "produce under faults", mark)
        say(
            f"[{config.name}/{config.fsync}/{config.watch}] produced; "
            "waiting for every client to catch up"
        )
        outcome = load.ask(
            ("finish", producer.result.expected_per_user(users), config.settle_s),
            config.settle_s + 120,
        )
        kept, queued = persisted(redis_server.url, users)
        result.delivery = analyse(outcome["records"], producer.result, users, kept, queued, result)
        result.clients = {k: v for k, v in outcome.items() if k != "records"}
        result.producer.update(
            messages=config.messages,
            acked=config.messages - producer.result.given_up(),
            retried=len(producer.result.retried),
            errors=producer.result.errors,
        )
        mark = _phase(result, "catch up", mark)
        result.after = back_to_baseline(service, redis_server.port, result.baseline)
        result.workers = worker_health(service, runner)
        mark = _phase(result, "back to baseline", mark)
    except Exception as error:  # a broken run is a failed run, with its reason on record
        result.errors.append(f"{type(error).__name__}: {error}")
        raise
    finally:
        stop_run(producer, load, service, redis_server)
        result.duration_s = time.monotonic() - started
        if "back to baseline" in result.phases:
            _phase(result, "stop", mark)
    return result


def _phase(result: ChaosResult, name: str, since: float) -> float:
    now = time.monotonic()
    result.phases[name] = round(now - since, 1)
    return now


__all__ = ["QUICK", "ChaosConfig", "ChaosResult", "run_chaos"]
