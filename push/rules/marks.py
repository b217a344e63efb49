"""The delivered marks and acks: which one is kept, and how often they are written.

The rules, in words:

- Per user, only the newest entry written (and the newest ack) waits to be written: a
  newer one replaces it, an older or equal one is ignored. The same holds for marks put
  back after a write that failed: one that came meanwhile and is newer stays.
- The waiting marks of all users are written together, at most every MARK_INTERVAL_S, in
  pipelines of MARK_CHUNK users.
"""

from __future__ import annotations

#: The marks are written at most this often (the newest entry of each user each time).
MARK_INTERVAL_S = 0.05
#: Marks per pipeline: a worker with thousands of busy users does not hold its loop,
#: or Redis, for long on one of them.
MARK_CHUNK = 500


def newer(key: tuple[int, int], waiting: tuple[int, int] | None) -> bool:
    """Whether the mark `key` replaces the one `waiting` (None: none waits)."""
    return waiting is None or key > waiting


def flush_wait_s(last_flush: float, now: float) -> float:
    """Seconds to wait before the next write of the marks (<= 0: write now)."""
    return last_flush + MARK_INTERVAL_S - now
