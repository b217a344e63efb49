"""How long mail waits: a mailbox's cap (PUSH_MAILBOX_MAX) and age (PUSH_MAILBOX_TTL_S).

Theory of operation: past either, the oldest messages go, and every one that goes is
counted (`push_messages_expired_total{reason}`) and logged (at most a line per mailbox and
reason a minute, carrying the count since its last line); nothing goes silently.

- Each mailbox has a write marker, `{mailbox}:swept`: when it was last written, and its
  length and newest message then. Our writers (the publish helper, the API, the CLI)
  trim, renew the expiry and stamp the marker in the script that writes
  (lua/publish.lua); the drain of an online user does the same (lua/drain.lua),
  so an online user's backlog never ages out.
- A raw `LPUSH` to an offline user's mailbox is seen by the sweep: one worker of the fleet
  at a time (a lease per interval), every PUSH_MAILBOX_SWEEP_S, scans a bounded share of
  the keys (SWEEP_SCANS SCAN calls of SWEEP_SCAN_COUNT), continuing where the last turn
  left off (its cursor is kept in Redis), and runs lua/sweep.lua on each mailbox: a
  mailbox whose length or newest message is not what its marker says was written since
  (its marker is stamped now); one that is was last written at the marker's time and is
  dropped once PUSH_MAILBOX_TTL_S has passed since. The sweeper's TTL decides, whatever
  TTL the writer had. Past the cap the oldest go. A mailbox is held to them within one
  pass over the keys.
- Redis's own expiry on a mailbox comes MAILBOX_EXPIRY_MARGIN_S after its TTL
  (config.mailbox_expiry_ms): it only catches a mailbox while no service sweeps, and that
  loss is not counted.
"""

from __future__ import annotations

import logging
import os
import secrets

import gevent
import redis

from push.delivery.retry import Retry
from push.model.keys import InvalidUserId, UserKeys, user_keys, validate_user_id
from push.model.settings import DeliverySettings, mailbox_expiry_ms
from push.storage.clients import queue_script
from push.storage.drops import MAILBOX_FULL, MAILBOX_TTL, messages_expired
from push.storage.scripts import script
from push.storage.store import Store

log = logging.getLogger(__name__)

#: Keys SCAN looks at per call (a hint to Redis: about this many slots of its table).
SWEEP_SCAN_COUNT = 1000
#: SCAN calls per turn: at most ~10,000 keys looked at per PUSH_MAILBOX_SWEEP_S, so one
#: turn never holds Redis or the worker for long.
SWEEP_SCANS = 10
#: Whoever holds this sweeps; it expires after one interval, so one turn per interval.
#: Per mailbox template (it follows): services with other templates sweep other keys.
SWEEP_LEASE_KEY = "push:sweep:lease:"
#: Where the pass over the keys is (the template, and on a cluster the primary, follow).
SWEEP_CURSOR_KEY = "push:sweep:cursor:"


def scan_pattern(template: str) -> str:
    """The SCAN pattern of every mailbox: `user_{user_id}_messages` -> `user_*_messages`."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in template)
    return escaped.replace("{user_id}", "*")


def user_id_of(template: str, key: str) -> str | None:
    """The user id in a key SCAN matched, or None if it is no mailbox of ours."""
    prefix, _, suffix = template.partition("{user_id}")
    if not (key.startswith(prefix) and key.endswith(suffix)) or len(key) <= len(prefix + suffix):
        return None
    try:
        return validate_user_id(key[len(prefix) : len(key) - len(suffix)])
    except InvalidUserId:
        return None


class Sweeper:
    """This worker's part of the sweep: a greenlet that takes a turn whenever it gets the
    lease (see the module's docstring)."""

    def __init__(self, store: Store, settings: DeliverySettings, interval_s: float) -> None:
        self.store = store
        self.template = settings.mailbox_template
        self.mailbox_max = settings.mailbox_max
        self.ttl_s = settings.mailbox_ttl_s
        self.interval_s = interval_s
        self._sweep = script(store.redis, "sweep.lua")
        self._pid: int | None = None
        self._id = ""

    def start(self) -> None:
        """Start sweeping in this process (once; a forked worker starts its own)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._id = f"{os.getpid()}:{secrets.token_hex(4)}"
        gevent.spawn(self._run)

    def _run(self) -> None:
        retry = Retry("sweep", log)
        while True:
            gevent.sleep(self.interval_s)  # no backoff: the next turn comes at its time
            try:
                self.turn()
            except Exception as error:
                retry.failed(error, "in the mailbox sweep")

    def turn(self, force: bool = False) -> tuple[int, int] | None:
        """One turn, if this worker gets the lease (`force`: regardless): the messages it
        dropped (over the cap, for age), or None when another worker has the turn."""
        lease_ms = max(1, int(self.interval_s * 1000))
        lease = SWEEP_LEASE_KEY + self.template
        if not force and not self.store.redis.set(lease, self._id, nx=True, px=lease_ms):
            return None
        full = aged = 0
        for name, client in self._nodes():
            dropped = self._sweep_node(name, client)
            full, aged = full + dropped[0], aged + dropped[1]
        return full, aged

    def _nodes(self) -> list[tuple[str, redis.Redis]]:
        """(name, client) of every server whose keys are swept: each cluster primary."""
        client = self.store.redis
        if not self.store.cluster:
            return [("", client)]
        return [(node.name, client.get_redis_connection(node)) for node in client.get_primaries()]

    def _sweep_node(self, name: str, node: redis.Redis) -> tuple[int, int]:
        cursor_key = f"{SWEEP_CURSOR_KEY}{self.template}:{name}"
        cursor = int(self.store.redis.get(cursor_key) or 0)
        pattern = scan_pattern(self.template)
        users: dict[str, UserKeys] = {}
        for _ in range(SWEEP_SCANS):
            cursor, found = node.scan(cursor, match=pattern, count=SWEEP_SCAN_COUNT)
            for key in found:
                user_id = user_id_of(self.template, key.decode() if isinstance(key, bytes) else key)
                if user_id is not None:
                    users[user_id] = user_keys(user_id, self.template)
            if cursor == 0:
                break
        self.store.redis.set(cursor_key, cursor, ex=max(60, int(self.interval_s * 10)))
        return self._sweep_mailboxes(list(users.values()))

    def _sweep_mailboxes(self, users: list[UserKeys]) -> tuple[int, int]:
        if not users:
            return 0, 0
        limits = [self.mailbox_max, mailbox_expiry_ms(self.ttl_s), self.ttl_s * 1000]
        with self.store.redis.pipeline(transaction=False) as pipe:
            for keys in users:
                queue_script(pipe, self._sweep, [keys.mailbox, keys.swept], limits)
            replies = pipe.execute(raise_on_error=False)
        full = aged = 0
        for mailbox, reply in zip((keys.mailbox for keys in users), replies, strict=True):
            if isinstance(reply, Exception):
                log.warning("mailbox sweep skipped mailbox=%s error=%s", mailbox, reply)
                continue
            capped, expired = int(reply[0]), int(reply[1])
            if capped:
                messages_expired(MAILBOX_FULL, mailbox, capped)
            if expired:
                messages_expired(MAILBOX_TTL, mailbox, expired)
            full, aged = full + capped, aged + expired
        return full, aged
