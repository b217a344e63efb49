"""The producer process: what a backend does, as fast or as steadily as asked.

push's producers `LPUSH user_<id>_messages <payload>`; Flask-SSE's `PUBLISH <channel>`
the JSON its `sse.publish` writes (`{"data": <payload>}`). Every payload carries
`ts=<time.time_ns()>` stamped just before it is sent, so a client on the same machine
computes publish-to-client latency. Also the raw limit: a bare redis-py loop.

Commands over a Pipe, each answered with a dict: ("paced", ...), ("saturate", ...),
("preload", ...), ("raw", ...), ("exit",).
"""

from __future__ import annotations

import json
import random
import time

import redis
from load_clients import DELIVERIES

PAYLOAD_BYTES = 64


def payload(user_id: str) -> str:
    text = f"ts={time.time_ns()} u={user_id} "
    return text + "x" * max(0, PAYLOAD_BYTES - len(text))


def send(pipe, system: str, user_id: str) -> None:
    if system == "push":
        pipe.lpush(f"user_{user_id}_messages", payload(user_id))
    else:
        pipe.publish(f"user_{user_id}", json.dumps({"data": payload(user_id)}))


def paced(client: redis.Redis, system: str, users: list[str], rate: float, duration: float):
    """`rate` messages a second, each to a random user, for `duration` seconds."""
    rng = random.Random(7)
    sent = 0
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= duration:
            break
        due = int(elapsed * rate) + 1 - sent
        if due <= 0:
            time.sleep(min((sent / rate) - elapsed, 0.01))
            continue
        pipe = client.pipeline(transaction=False)
        for _ in range(due):
            send(pipe, system, rng.choice(users))
        pipe.execute()
        sent += due
    return {"sent": sent, "seconds": time.monotonic() - start}


def saturate(
    client: redis.Redis,
    generators: list,
    system: str,
    users: list[str],
    tabs: int,
    window: int,
    batch: int,
    duration: float,
):
    """As fast as the system delivers: keep `window` messages in flight (sent, not yet
    received by every tab), round robin over the users, `batch` per round trip."""
    base = sum(stats[DELIVERIES] for stats in generators)
    sent = 0
    index = 0
    n_users = len(users)
    start = time.monotonic()
    while time.monotonic() - start < duration:
        delivered = sum(stats[DELIVERIES] for stats in generators) - base
        room = window - (sent - delivered / tabs)
        if room < batch / 4:
            time.sleep(0.0005)
            continue
        n = int(min(room, batch))
        pipe = client.pipeline(transaction=False)
        for _ in range(n):
            send(pipe, system, users[index % n_users])
            index += 1
        pipe.execute()
        sent += n
    return {"sent": sent, "seconds": time.monotonic() - start}


def preload(client: redis.Redis, users: list[str], per_user: int):
    """A backlog: `per_user` messages in each user's mailbox, oldest first."""
    start = time.monotonic()
    for i in range(0, len(users), 50):
        pipe = client.pipeline(transaction=False)
        for user_id in users[i : i + 50]:
            pipe.lpush(f"user_{user_id}_messages", *(payload(user_id) for _ in range(per_user)))
        pipe.execute()
    return {"sent": len(users) * per_user, "seconds": time.monotonic() - start}


def raw(client: redis.Redis, duration: float, batch: int):
    """The raw limit: LPUSH then BLMOVE, one message per round trip each (batch == 1),
    or `batch` of each in one pipeline."""
    key, pending = "bench:raw:mailbox", "bench:raw:pending"
    client.delete(key, pending)
    moved = 0
    start = time.monotonic()
    message = payload("raw")
    while time.monotonic() - start < duration:
        if batch == 1:
            client.lpush(key, message)
            if client.blmove(key, pending, 1, "RIGHT", "LEFT") is not None:
                moved += 1
        else:
            pipe = client.pipeline(transaction=False)
            pipe.lpush(key, *([message] * batch))
            for _ in range(batch):
                pipe.blmove(key, pending, 1, "RIGHT", "LEFT")
            moved += sum(1 for r in pipe.execute()[1:] if r is not None)
        if moved % 10000 < batch:
            client.delete(pending)
    seconds = time.monotonic() - start
    client.delete(key, pending)
    return {"moved": moved, "seconds": seconds}


def serve(pipe, redis_port: int, generators: list) -> None:
    client = redis.Redis(port=redis_port, socket_timeout=30)
    while True:
        try:
            command, kwargs = pipe.recv()
        except EOFError:
            return
        if command == "exit":
            pipe.send({})
            return
        started = time.perf_counter()
        if command == "paced":
            result = paced(client, **kwargs)
        elif command == "saturate":
            result = saturate(client, generators, **kwargs)
        elif command == "preload":
            result = preload(client, **kwargs)
        elif command == "raw":
            result = raw(client, **kwargs)
        else:
            result = {"error": f"unknown command {command}"}
        result["took"] = time.perf_counter() - started
        pipe.send(result)
