"""A load generator process: thousands of SSE or WebSocket clients on one event loop.

Raw sockets with hand-written HTTP/1.1 and WebSocket framing on asyncio (uvloop when
installed): a client costs a socket and one small object, and counting a delivery is a
`bytes.count`, so the generator stays far from being the bottleneck (its CPU is measured
and reported by run.py).

The controller (run.py) drives each generator through a Pipe and reads its counters
from a shared array without asking:

    stats[LIVE]        streams whose response head arrived (SSE 200 / WS 101)
    stats[FAILED]      connects or handshakes that failed
    stats[DELIVERIES]  messages received (one event or text frame = one delivery)
    stats[LOST]        streams the server closed
    stats[OPENING]     connects in progress (and, when waiting for heads, heads due)

Commands, each answered with one reply: ("open", spec), ("stop_opening",), ("latency", bool),
("take_latency",), ("counts",), ("live_users",), ("reset_counts",), ("close_all",),
("exit",).
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from array import array

from load_clients import (
    FAILED,
    N_STATS,
    OPENED,
    OPENING,
    Client,
    State,
)

from tests.harness.limits import raise_nofile

#: Seconds a connect may take (SYN retries included) before it counts as failed.
CONNECT_TIMEOUT_S = 20.0
#: Seconds a client waits for its response head before it stops holding a slot for it.
HEAD_TIMEOUT_S = 30.0


def build_request(spec: dict, user_id: str) -> bytes:
    path = spec["path"].format(user_id=user_id)
    host = f"127.0.0.1:{spec['port']}"
    if spec["transport"] == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n\r\n"
    ).encode()


async def open_all(state: State, spec: dict) -> None:
    """Open one client per user id in spec["users"], at most spec["concurrency"] at a time.

    With spec["await_head"], a slot is held until the response head arrives (a server
    that answers at once); without, only while the TCP connect is in progress (Flask-SSE
    sends its head with the first message)."""
    loop = asyncio.get_running_loop()
    stats = state.stats
    slots = asyncio.Semaphore(spec["concurrency"])
    deadline = time.monotonic() + spec["max_s"]
    ws = spec["transport"] == "ws"
    # One source address per generator: one address reaches one server port through at
    # most 28,232 ephemeral ports here, fewer than a capacity ramp's streams.
    local_addr = (spec["source"], 0) if spec.get("source") else None

    async def open_one(user_id: str) -> None:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                stats[OPENING] -= 1
                slots.release()

        client = Client(state, user_id, build_request(spec, user_id), ws, None)
        if spec["await_head"]:
            client.on_head = release
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: client, "127.0.0.1", spec["port"], local_addr=local_addr
                ),
                CONNECT_TIMEOUT_S,
            )
        except (TimeoutError, OSError):
            stats[FAILED] += 1
            release()
            return
        stats[OPENED] += 1
        state.clients.append(client)
        if spec["await_head"] and not released:
            loop.call_later(HEAD_TIMEOUT_S, release)
        else:
            release()

    tasks = []
    for user_id in spec["users"]:
        if time.monotonic() > deadline:
            break
        await slots.acquire()
        stats[OPENING] += 1
        tasks.append(asyncio.ensure_future(open_one(user_id)))
    await asyncio.gather(*tasks, return_exceptions=True)


def serve(pipe, stats, index: int) -> None:
    """The process's main: run the event loop and answer the controller's commands."""
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    state = State(stats)
    background: set[asyncio.Future] = set()

    def on_command() -> None:
        # The loop makes a reader's fd non-blocking; a command (a list of 10,000 user ids)
        # may be larger than one pipe buffer, so read it whole in blocking mode.
        os.set_blocking(pipe.fileno(), True)
        try:
            command, *args = pipe.recv()
        except EOFError:
            loop.stop()
            return
        reply: object = "ok"
        if command == "open":
            task = asyncio.ensure_future(open_all(state, args[0]))
            background.add(task)
            task.add_done_callback(background.discard)
        elif command == "stop_opening":
            for task in list(background):
                task.cancel()
            stats[OPENING] = 0
        elif command == "latency":
            state.latency_on = bool(args[0])
            state.latencies = array("q")
        elif command == "take_latency":
            reply = state.latencies.tobytes()
            state.latencies = array("q")
        elif command == "counts":
            reply = array("q", (c.msgs for c in state.clients if c.live)).tobytes()
        elif command == "live_users":
            reply = sorted({c.user_id for c in state.clients if c.live})
        elif command == "reset_counts":
            for client in state.clients:
                client.msgs = 0
        elif command == "close_all":
            for task in list(background):
                task.cancel()
            for client in state.clients:
                client.abort()
            state.clients = []
            for i in range(N_STATS):
                stats[i] = 0
        elif command == "exit":
            loop.stop()
        pipe.send(reply)

    loop.add_reader(pipe.fileno(), on_command)
    try:
        loop.run_forever()
    finally:
        for client in state.clients:
            client.abort()
