"""The controller's side of the load: the generator processes (loadgen.py) and the
producer process (producer.py), spawned, driven through Pipes, their counters read
from shared arrays."""

from __future__ import annotations

import contextlib
from array import array

import loadgen
import producer
import psutil
from load_clients import N_STATS
from system import Server


class Generators:
    """The load generator processes and their shared counters."""

    def __init__(self, ctx, count: int) -> None:
        self.stats = [ctx.Array("q", N_STATS, lock=False) for _ in range(count)]
        self.pipes = []
        self.processes = []
        for index in range(count):
            ours, theirs = ctx.Pipe()
            process = ctx.Process(
                target=loadgen.serve, args=(theirs, self.stats[index], index), daemon=True
            )
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)
        self.ps = [psutil.Process(p.pid) for p in self.processes]

    def call(self, *command) -> list:
        for pipe in self.pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def total(self, index: int) -> int:
        return sum(stats[index] for stats in self.stats)

    def open(
        self,
        server: Server,
        transport: str,
        users: list[str],
        max_s: float,
        concurrency: int = 128,
    ) -> None:
        """One client per entry of `users` (a user id per tab), spread over the generators."""
        path = server.stream_path if transport == "sse" else "/ws?user_id={user_id}"
        for index, pipe in enumerate(self.pipes):
            pipe.send(
                (
                    "open",
                    {
                        "transport": transport,
                        "port": server.port,
                        "source": f"127.0.0.{index + 2}",
                        "path": path,
                        "users": users[index :: len(self.pipes)],
                        "concurrency": concurrency,
                        "await_head": server.system == "push",
                        "max_s": max_s,
                    },
                )
            )
        for pipe in self.pipes:
            pipe.recv()

    def counts(self) -> array:
        result = array("q")
        for reply in self.call("counts"):
            result.frombytes(reply)
        return result

    def latencies(self) -> array:
        result = array("q")
        for reply in self.call("take_latency"):
            result.frombytes(reply)
        return result

    def stop(self) -> None:
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            with contextlib.suppress(OSError):
                pipe.send(("exit",))
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


class Producer:
    def __init__(self, ctx, redis_port: int, generators: Generators) -> None:
        self.pipe, theirs = ctx.Pipe()
        self.process = ctx.Process(
            target=producer.serve, args=(theirs, redis_port, generators.stats), daemon=True
        )
        self.process.start()
        self.ps = psutil.Process(self.process.pid)

    def start(self, command: str, **kwargs) -> None:
        self.pipe.send((command, kwargs))

    def result(self, timeout: float = 120) -> dict:
        if not self.pipe.poll(timeout):
            raise RuntimeError("producer did not answer")
        return self.pipe.recv()

    def run(self, command: str, **kwargs) -> dict:
        self.start(command, **kwargs)
        return self.result()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.send(("exit", {}))
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
