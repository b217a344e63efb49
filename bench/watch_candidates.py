"""How a worker can learn that a mailbox received mail: the candidates, measured side by side.

    .venv/bin/python bench/watch_candidates.py [--users 8000] [--seconds 3]

One private Redis, USERS mailboxes all "online" in one watching process (what a worker
does), a producer process LPUSHing to random users. For each candidate the watcher learns
which mailboxes received something and drains them with the service's own drain script,
in one pipeline per turn of its loop:

- keyspace: `CONFIG SET notify-keyspace-events Kl`, one SUBSCRIBE per mailbox's
  `__keyspace@0__:<mailbox>` channel; every list command on a mailbox (the producer's
  LPUSH, the drain's RPOPs) is published to it.
- tracking: `CLIENT TRACKING on OPTIN NOLOOP` on the watcher's own RESP3 connection; a
  `CLIENT CACHING yes` + `LLEN` after each drain arms one invalidation per mailbox, sent
  on the next write by anyone else; writes until the next LLEN send nothing.

Prints, per candidate and load (as fast as it drains, then 500 msg/s): messages/s, and
Redis and watcher CPU per message. Nothing is written; CHANGES.md quotes a run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path

import hiredis
import psutil
import redis
from redis.connection import Connection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from push.delivery.mover import drain_limits  # noqa: E402
from push.model.keys import user_keys  # noqa: E402
from push.model.settings import DeliverySettings, load_config  # noqa: E402
from push.storage.store import Store  # noqa: E402
from tests.harness.redis_servers import RedisServer  # noqa: E402

TEMPLATE = "user_{user_id}_messages"


def produce(port: int, users: int, rate: float, seconds: float, out) -> None:
    """LPUSH to random users: `rate` a second (0: as fast as pipelines of 100 go)."""
    client = redis.Redis(host="127.0.0.1", port=port)
    client.ping()
    out.send("ready")
    rng = random.Random(7)
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        pipe = client.pipeline(transaction=False)
        batch = 100 if rate == 0 else 5
        for _ in range(batch):
            pipe.lpush(f"user_{rng.randrange(users)}_messages", "x" * 64)
        pipe.execute()
        sent += batch
        if rate:
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    out.send(sent)


class RawReader:
    """Replies and push messages off a connection's socket, parsed by hiredis: redis-py's
    read_response recurses once per push message that precedes a reply."""

    def __init__(self, conn: Connection) -> None:
        self.sock = conn._sock
        self.reader = hiredis.Reader()
        self.buffer = bytearray(65536)

    def next(self, timeout: float | None) -> object:
        """The next reply or push; NOTHING if none came within `timeout`."""
        item = self.reader.gets()
        while item is False:
            self.sock.settimeout(timeout)
            try:
                n = self.sock.recv_into(self.buffer)
            except (TimeoutError, BlockingIOError):
                return NOTHING
            finally:
                self.sock.settimeout(None)
            if n == 0:
                raise ConnectionError("closed")
            self.reader.feed(self.buffer, 0, n)
            item = self.reader.gets()
        return item


NOTHING = object()
VERBOSE = "--verbose" in sys.argv


class Keyspace:
    def __init__(self, port: int, mailboxes: list[str]) -> None:
        admin = redis.Redis(host="127.0.0.1", port=port)
        admin.config_set("notify-keyspace-events", "Kl")
        self.conn = Connection(host="127.0.0.1", port=port, protocol=3)
        self.conn.connect()
        for start in range(0, len(mailboxes), 1000):
            chunk = [f"__keyspace@0__:{m}" for m in mailboxes[start : start + 1000]]
            self.conn.send_command("SUBSCRIBE", *chunk)
            for _ in chunk:
                self.conn.read_response(push_request=True)
        self.prefix = len("__keyspace@0__:")
        self.raw = RawReader(self.conn)
        self.found: set[str] = set()

    def push(self, message: list) -> None:
        if message[0] == b"message" and message[2] == b"lpush":
            self.found.add(message[1][self.prefix :].decode())

    def after_drain(self, mailboxes: list[str]) -> list:
        return []


class Tracking:
    def __init__(self, port: int, mailboxes: list[str]) -> None:
        self.conn = Connection(host="127.0.0.1", port=port, protocol=3)
        self.conn.connect()
        self.found: set[str] = set()
        self.conn.send_command("CLIENT", "TRACKING", "on", "OPTIN", "NOLOOP")
        self.conn.read_response()
        self.raw = RawReader(self.conn)
        for start in range(0, len(mailboxes), 1000):
            chunk = mailboxes[start : start + 1000]
            self.conn.send_packed_command(self.conn.pack_commands(self.after_drain(chunk)))
            for _ in range(2 * len(chunk)):
                reply(self)

    def push(self, message: list) -> None:
        if message[0] == b"invalidate" and message[1]:
            self.found.update(key.decode() for key in message[1])

    def after_drain(self, mailboxes: list[str]) -> list:
        commands = []
        for mailbox in mailboxes:
            commands += [("CLIENT", "CACHING", "yes"), ("LLEN", mailbox)]
        return commands


def hints(candidate, timeout: float) -> set[str]:
    """What the candidate's push messages named, waiting up to `timeout` for the first."""
    while True:
        item = candidate.raw.next(timeout)
        if item is NOTHING:
            break
        candidate.push(item)
        timeout = 0
    found, candidate.found = candidate.found, set()
    return found


def reply(candidate) -> object:
    """The next reply; push messages on the way are handed to the candidate."""
    while True:
        item = candidate.raw.next(None)
        if isinstance(item, hiredis.PushNotification):
            candidate.push(item)
        else:
            return item


def run(kind: type, server: RedisServer, users: int, rate: float, seconds: float) -> dict:
    """Subscribe or arm every mailbox, then drain what the candidate reports until the
    producer has stopped and a second passed without a hint."""
    redis.Redis(host="127.0.0.1", port=server.port).flushall()
    redis.Redis(host="127.0.0.1", port=server.port).config_resetstat()
    store = Store(server.url, pool_size=2, block_s=1)
    store.redis.script_load(store._drain.script)
    limits = drain_limits(DeliverySettings.from_config(load_config({"PUSH_DEMO": "1"})))
    keys = {f"user_{i}_messages": user_keys(str(i), TEMPLATE) for i in range(users)}
    candidate = kind(server.port, list(keys))
    conn = candidate.conn
    redis_ps = psutil.Process(server.process.pid)
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    producer = ctx.Process(target=produce, args=(server.port, users, rate, seconds, theirs))
    producer.start()
    ours.poll(30)  # the producer says it is ready before it starts the clock
    ours.recv()
    redis_cpu0 = sum(redis_ps.cpu_times()[:2])
    cpu0 = time.process_time()
    started = quiet_since = time.monotonic()
    moved = 0
    while time.monotonic() - quiet_since < 1.0 or producer.is_alive():
        dirty = hints(candidate, 0.05)
        if not dirty:
            continue
        quiet_since = time.monotonic()
        commands = []
        for mailbox in dirty:
            user = keys[mailbox]
            commands.append(store.drain_command(user, limits, worker_prefix="watcher:"))
            commands += candidate.after_drain([mailbox])
        per_user = len(commands) // len(dirty)
        conn.send_packed_command(conn.pack_commands(commands))
        for index in range(len(commands)):
            answer = reply(candidate)
            if index % per_user == 0:
                moved += answer[0]
    busy = quiet_since - started
    cpu = time.process_time() - cpu0
    redis_cpu = sum(redis_ps.cpu_times()[:2]) - redis_cpu0
    producer.join()
    sent = ours.recv()
    if VERBOSE:
        stats = redis.Redis(host="127.0.0.1", port=server.port).info("commandstats")
        for name, row in sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:8]:
            per_message = row["usec"] / max(1, moved)
            print(
                f"    {name:24} calls {row['calls']:>8}  {row['usec_per_call']:6.2f} us/call  "
                f"{per_message:6.2f} us/msg"
            )
    store.close()
    return {
        "sent": sent,
        "moved": moved,
        "msgs_per_s": moved / max(1e-9, busy),
        "redis_us_per_msg": redis_cpu / max(1, moved) * 1e6,
        "watcher_us_per_msg": cpu / max(1, moved) * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--verbose", action="store_true", help="Redis's costliest commands")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder)).start()
        try:
            for rate in (0.0, 500.0):
                for kind in (Keyspace, Tracking):
                    row = run(kind, server, args.users, rate, args.seconds)
                    load = "as fast as it drains" if rate == 0 else f"{rate:.0f} msg/s"
                    print(
                        f"{kind.__name__.lower():9} {load:21} moved {row['moved']:>7,} of "
                        f"{row['sent']:>7,}  {row['msgs_per_s']:>8,.0f}/s  "
                        f"Redis {row['redis_us_per_msg']:6.1f} us/msg  "
                        f"watcher {row['watcher_us_per_msg']:6.1f} us/msg",
                        flush=True,
                    )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
