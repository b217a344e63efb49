"""The clients' process: every chaos client on one asyncio loop, driven through a Pipe.

Runs in its own process (multiprocessing, spawn) so that the controller can restart Redis
and kill workers from its main thread without stalling a single client. Commands, each
answered with one reply:

    ("status",)                      -> {"connected": n, "with_first": n, "clients": n}
    ("go", t0)                       -> schedule slow, churning and silently cut clients
                                        relative to t0 (time.time() of the first message)
    ("finish", expected, settle_s)   -> wait until every client has its user's last message
                                        (or settle_s passes), stop everything, return results
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from chaos.clients import Churn, ResumingClient, churn_once
from chaos.procs import server_socket_of, still_holds
from chaos.proxy import FaultProxy
from chaos.record import Record
from chaos.sockets import Slowness
from tests.harness.limits import raise_nofile
from tests.harness.processes import children

#: Seconds a silent cut may take to be noticed (by either end) before it counts as missed.
NOTICE_DEADLINE_S = 30.0
#: Seconds the clients get to stop after the run.
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class SilentCut:
    user_index: int
    client_index: int
    mode: str  # "reset" (SSE: found by a heartbeat write) or "drop" (WS: by ping/pong)


@dataclass(frozen=True)
class LoadPlan:
    port: int
    users: list[str]
    transports: list[list[str]]  # per user, per regular client: "sse" / "ws"
    slow: list[tuple[str, str, float]]  # (user, transport, start second)
    slowness: Slowness
    churn: list[Churn]
    silent_cuts: list[SilentCut]
    silent_cut_at_s: float
    idle_s: float
    master_pid: int
    lifetime_s: float  # the process ends by itself after this, whatever happens
    seed: int = 0


@dataclass
class Load:
    plan: LoadPlan
    conn: Connection
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    regular: list[ResumingClient] = field(default_factory=list)
    slow: list[ResumingClient] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    churn_tasks: list[asyncio.Task] = field(default_factory=list)
    churn_outcomes: Counter = field(default_factory=Counter)
    silent_tasks: list[asyncio.Task] = field(default_factory=list)
    silent_results: list[dict] = field(default_factory=list)
    proxy: FaultProxy | None = None
    deadline: float = 0.0

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + self.plan.lifetime_s
        self.proxy = FaultProxy(self.plan.port)
        await self.proxy.start()
        self._start_regular()
        try:
            while loop.time() < self.deadline:
                command = await loop.run_in_executor(None, self.conn.recv)
                reply = await self.handle(command)
                self.conn.send(reply)
                if command[0] == "finish":
                    return
        finally:
            await self._shut_down()

    def _start_regular(self) -> None:
        proxied = {(c.user_index, c.client_index) for c in self.plan.silent_cuts}
        for u, user in enumerate(self.plan.users):
            for c, transport in enumerate(self.plan.transports[u]):
                port = self.proxy.port if (u, c) in proxied else self.plan.port
                client = ResumingClient(
                    port, Record(user, "regular", transport), idle_s=self.plan.idle_s
                )
                self.regular.append(client)
                self.tasks.append(asyncio.create_task(client.run(self.stop, self.deadline)))

    async def handle(self, command: tuple) -> object:
        name = command[0]
        if name == "status":
            return {
                "clients": len(self.regular),
                "connected": sum(c.connected for c in self.regular),
                "with_first": sum(bool(c.record.seqs) for c in self.regular),
            }
        if name == "go":
            self._go(command[1])
            return "going"
        if name == "finish":
            return await self._finish(command[1], command[2])
        raise ValueError(f"unknown command {name!r}")

    def _go(self, t0: float) -> None:
        loop = asyncio.get_running_loop()
        base = loop.time() + (t0 - time.time())
        for user, transport, start_s in self.plan.slow:
            client = ResumingClient(
                self.plan.port,
                Record(user, "slow", transport),
                idle_s=self.plan.idle_s,
                first_cursor="0-0",
                slowness=self.plan.slowness,
            )
            self.slow.append(client)
            self.tasks.append(asyncio.create_task(self._later(base + start_s, client)))
        self.tasks.append(asyncio.create_task(self._churn(base)))
        for cut in self.plan.silent_cuts:
            self.silent_tasks.append(asyncio.create_task(self._silent_cut(base, cut)))

    async def _later(self, at: float, client: ResumingClient) -> None:
        await self._sleep_until(at)
        await client.run(self.stop, self.deadline)

    async def _sleep_until(self, at: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                self.stop.wait(), max(0.0, at - asyncio.get_running_loop().time())
            )

    async def _churn(self, base: float) -> None:
        for plan in sorted(self.plan.churn, key=lambda p: p.start_s):
            await self._sleep_until(base + plan.start_s)
            if self.stop.is_set():
                return
            task = asyncio.create_task(churn_once(self.plan.port, plan))
            task.add_done_callback(self._tally)
            self.churn_tasks.append(task)

    def _tally(self, task: asyncio.Task) -> None:
        if not task.cancelled():
            self.churn_outcomes[task.result()] += 1

    async def _silent_cut(self, base: float, cut: SilentCut) -> None:
        client = self.regular[cut.user_index * len(self.plan.transports[0]) + cut.client_index]
        await self._sleep_until(base + self.plan.silent_cut_at_s)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 10
        pair = None
        while pair is None and loop.time() < give_up and not self.stop.is_set():
            if client.connected and client.local_port is not None:
                pair = self.proxy.cut(client.local_port, cut.mode)
            if pair is None:
                await asyncio.sleep(0.05)
        result = {"transport": client.record.transport, "mode": cut.mode, "cut": pair is not None}
        if pair is not None:
            client.cut = True
            result.update(await self._watch_cut(client, pair))
        self.silent_results.append(result)

    async def _watch_cut(self, client: ResumingClient, pair) -> dict:
        """Seconds until the client noticed (idle timeout) and the server let go (its fd)."""
        upstream_port = pair.upstream[1].get_extra_info("sockname")[1]
        held = server_socket_of(children(self.plan.master_pid), self.plan.port, upstream_port)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + NOTICE_DEADLINE_S
        client_s = server_s = None
        while loop.time() < give_up and (client_s is None or server_s is None):
            now = time.time()
            if client_s is None and (client.idle_noticed_at or 0) >= pair.cut_at:
                client_s = client.idle_noticed_at - pair.cut_at
            if server_s is None and (held is None or not still_holds(*held)):
                server_s = now - pair.cut_at
            await asyncio.sleep(0.1)
        return {
            "client_noticed_s": client_s,
            "server_released_s": server_s,
            "server_socket_found": held is not None,
        }

    async def _finish(self, expected: dict[str, int], settle_s: float) -> dict:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + settle_s
        readers = self.regular + self.slow
        while loop.time() < give_up:
            if all(c.record.has(expected[c.record.user] - 1) for c in readers):
                break
            await asyncio.sleep(0.2)
        settled_in = settle_s - (give_up - loop.time())
        # A silent cut's watch ends by itself (NOTICE_DEADLINE_S); its result is wanted.
        await asyncio.wait_for(
            asyncio.gather(*self.silent_tasks, return_exceptions=True), NOTICE_DEADLINE_S + 15
        )
        await self._shut_down()
        return {
            "settled_s": settled_in,
            "records": [c.record.summary() for c in readers],
            "slow_outcomes": Counter(c.slow_outcome or "never started" for c in self.slow),
            "slow_seconds": sorted(round(c.slow_seconds, 1) for c in self.slow),
            "churn": dict(self.churn_outcomes),
            "churn_started": len(self.churn_tasks),
            "silent_cuts": self.silent_results,
        }

    async def _shut_down(self) -> None:
        self.stop.set()
        pending = [t for t in self.tasks + self.churn_tasks + self.silent_tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=STOP_TIMEOUT_S)
            for task in still:
                task.cancel()
        if self.proxy is not None:
            await self.proxy.close()
            self.proxy = None


def main(conn: Connection, plan: LoadPlan) -> None:
    """The process's entry (multiprocessing target)."""
    raise_nofile()
    import random

    random.seed(plan.seed ^ os.getpid())
    asyncio.run(Load(plan, conn).serve())
