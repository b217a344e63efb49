"""The producer of a chaos run: sequence-numbered LPUSHes at a steady rate, through faults.

Message `m` goes to user `m % U` with that user's sequence number `m // U`, so each
user's messages are numbered 0, 1, 2... in the order they were acknowledged. A push that
fails (Redis restarting) is retried until Redis acknowledges it: the producer is
at-least-once, like any sensible backend. A retried push whose first attempt had in fact
been applied shows up as the same sequence number under two event ids; those are counted
apart from the service's own duplicates.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from push.model.keys import user_keys

#: Seconds one message may keep failing before the producer gives up on it.
PUSH_DEADLINE_S = 60.0
#: Pause between attempts while Redis does not answer (jittered).
RETRY_PAUSE_S = 0.05


def payload(seq: int, pad: int) -> str:
    """`"<seq> <time_ns> <padding>"`: the number, the moment it was sent, and bulk."""
    return f"{seq} {time.time_ns()} {'x' * pad}"


@dataclass
class ProducerResult:
    acked_at: list[float] = field(default_factory=list)  # per message; nan if never acked
    retried: list[int] = field(default_factory=list)  # messages sent more than once
    errors: int = 0
    finished_at: float = 0.0

    def expected_per_user(self, users: list[str]) -> dict[str, int]:
        """How many messages each user was sent (all acknowledged ones; a gap would be a
        message the producer gave up on, reported separately)."""
        counts = dict.fromkeys(users, 0)
        for m, acked in enumerate(self.acked_at):
            if not math.isnan(acked):
                counts[users[m % len(users)]] += 1
        return counts

    def given_up(self) -> int:
        return sum(1 for acked in self.acked_at if math.isnan(acked))


class Producer(threading.Thread):
    """LPUSHes `messages` payloads at `rate` per second from `start_at` (time.time())."""

    def __init__(
        self,
        redis_url: str,
        users: list[str],
        pads: dict[str, int],
        messages: int,
        rate: float,
        start_at: float,
    ) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.client = redis.Redis.from_url(
            redis_url, socket_timeout=5, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        self.users = users
        self.mailboxes = [user_keys(u, "user_{user_id}_messages").mailbox for u in users]
        self.pads = [pads.get(u, 0) for u in users]
        self.messages = messages
        self.rate = rate
        self.start_at = start_at
        self.result = ProducerResult(acked_at=[math.nan] * messages)
        self.stop_event = threading.Event()

    def run(self) -> None:
        try:
            for m in range(self.messages):
                if self.stop_event.is_set():
                    return
                due = self.start_at + m / self.rate
                delay = due - time.time()
                if delay > 0:
                    self.stop_event.wait(delay)  # pacing: the producer's steady rate
                self._push(m)
        finally:
            self.result.finished_at = time.time()
            self.client.close()

    def _push(self, m: int) -> None:
        index = m % len(self.users)
        body = payload(m // len(self.users), self.pads[index])
        give_up_at = time.monotonic() + PUSH_DEADLINE_S
        attempts = 0
        while time.monotonic() < give_up_at and not self.stop_event.is_set():
            attempts += 1
            try:
                self.client.lpush(self.mailboxes[index], body)
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                self.result.errors += 1
                self.stop_event.wait(RETRY_PAUSE_S * random.uniform(0.5, 1.5))
                continue
            self.result.acked_at[m] = time.time()
            if attempts > 1:
                self.result.retried.append(m)
            return
