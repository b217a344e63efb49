"""The clients of a chaos run: their plan (who connects how, who churns, who reads
slowly, which connections are cut silently) and the process they run in."""

from __future__ import annotations

import multiprocessing as mp
import random

from chaos import loadproc
from chaos.clients import Churn
from chaos.config import ChaosConfig
from chaos.loadproc import LoadPlan, SilentCut
from chaos.sockets import Slowness


def load_plan(config: ChaosConfig, port: int, master_pid: int, rng: random.Random) -> LoadPlan:
    users = config.user_ids()
    per_user = config.clients_per_user
    transports = [
        ["sse", "ws", "sse" if u % 2 == 0 else "ws"][:per_user] for u in range(len(users))
    ]
    total = config.produce_s
    fat = users[2 : 2 + config.fat_users]
    slow = [
        (fat[i % len(fat)], "sse" if i % 2 == 0 else "ws", rng.uniform(0.15, 0.5) * total)
        for i in range(config.slow)
    ]
    churn = [
        Churn(
            start_s=rng.uniform(0.02, 0.95) * total,
            user=rng.choice(users[2:]),
            transport=rng.choice(("sse", "ws")),
            style=(style := rng.choice(("request", "bytes", "time"))),
            amount={"request": rng.randint(1, 300), "bytes": rng.randint(1, 30_000)}.get(
                style, rng.uniform(0.0, 3.0)
            ),
            reset=rng.random() < 0.5,
            from_start=rng.random() < 0.3,
        )
        for _ in range(config.churn)
    ]
    return LoadPlan(
        port=port,
        users=users,
        transports=transports,
        slow=slow,
        slowness=Slowness(max_s=config.slow_max_s),
        churn=churn,
        silent_cuts=[SilentCut(0, 2, "reset"), SilentCut(1, 2, "drop")],
        silent_cut_at_s=config.silent_cut_at * total,
        idle_s=config.idle_s,
        master_pid=master_pid,
        lifetime_s=total + config.settle_s + 300,
        seed=config.seed,
    )


class LoadProcess:
    """The clients' process (chaos/loadproc.py), spawned, spoken to through a Pipe."""

    def __init__(self, plan: LoadPlan) -> None:
        context = mp.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=loadproc.main, args=(child, plan), daemon=True)

    def start(self) -> LoadProcess:
        self.process.start()
        return self

    def ask(self, command: tuple, timeout: float) -> object:
        self.pipe.send(command)
        if not self.pipe.poll(timeout):
            raise TimeoutError(f"the clients' process did not answer {command[0]!r}")
        return self.pipe.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def plan_fat(plan: LoadPlan) -> set[str]:
    return {user for user, _, _ in plan.slow}


def all_connected(load: LoadProcess, clients: int):
    status = load.ask(("status",), 30)
    return status["connected"] == clients, status
