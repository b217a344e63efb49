"""Messages a mailbox dropped unread, and idempotency records pushed out: logged here,
throttled, and passed to whoever counts them (the service's metrics register with
`count_with`; a producer process that never builds the service only logs).

Standard library only: `from push import publish` must stay cheap to import."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("push.retention")

MAILBOX_FULL = "mailbox_full"
MAILBOX_TTL = "mailbox_ttl"
#: What `count_with`'s counters hear for idempotency records evicted (not a drop reason).
IDEMPOTENCY_EVICTED = "idempotency_evicted"

#: A mailbox's drops are logged at most once a minute per reason (the metric counts each).
LOG_EVERY_S = 60.0
#: Mailboxes whose last line is remembered: bounds the throttle's memory.
LOG_KEYS_MAX = 10_000


class Throttle:
    """At most one log line per key every `every_s`, carrying the count since the last
    line: `add` answers the count to log now, or 0 to stay quiet (the count is kept for the
    key's next line). Remembers at most `size` keys (the longest-remembered go first)."""

    def __init__(self, every_s: float = LOG_EVERY_S, size: int = LOG_KEYS_MAX) -> None:
        self.every_s = every_s
        self.size = size
        self._keys: dict[object, list[float]] = {}

    def add(self, key: object, count: int, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        seen = self._keys.get(key)
        if seen is not None and now - seen[0] < self.every_s:
            seen[1] += count
            return 0
        if seen is not None:
            count += int(seen[1])
            del self._keys[key]
        elif len(self._keys) >= self.size:
            del self._keys[next(iter(self._keys))]
        self._keys[key] = [now, 0]
        return count


_logged = Throttle()


_counters: list[Callable[[str, int], None]] = []


def count_with(counter: Callable[[str, int], None]) -> None:
    """Have `counter(what, count)` hear every drop (a MAILBOX_* reason) and eviction."""
    if counter not in _counters:
        _counters.append(counter)


def counted(what: str, count: int) -> None:
    """Pass `count` of `what` to the registered counters."""
    for counter in _counters:
        counter(what, count)


def messages_expired(reason: str, mailbox: str, count: int) -> None:
    """Count and log (throttled: Throttle) messages that left `mailbox` unread, and why."""
    counted(reason, count)
    count = _logged.add((reason, mailbox), count)
    if not count:
        return
    if reason == MAILBOX_FULL:
        log.warning(
            "mailbox full mailbox=%s dropped=%d oldest messages (past PUSH_MAILBOX_MAX)",
            mailbox,
            count,
        )
    else:
        log.warning(
            "mailbox expired mailbox=%s dropped=%d messages (not written for PUSH_MAILBOX_TTL_S)",
            mailbox,
            count,
        )
