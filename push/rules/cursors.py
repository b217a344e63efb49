"""The cursor rules: where a tab starts, where a read of the history starts, and when a
tab or a wake needs no read at all.

A cursor is an event id (`<ms>-<seq>`) parsed into a key, `(ms, seq)`, which compares in
delivery order. The rules, in words:

- A stream starts (resumes) after the id its client sent (`Last-Event-ID`), else after the
  user's delivered mark (the newest entry any of its tabs was written), else at the start of
  the history. It starts caught up when the history held nothing after that point when it
  was admitted and that point is not older than the mark.
- The user's read of the history serves every local tab at once, from the oldest cursor
  among its readers: the tabs that are open and not behind (a closed tab, or one waiting to
  write a full outbox, does not hold the read back for the others).
- The read goes on while it returned a full batch or some reader was not covered by it.
- Without a wake, the user reads every RECHECK_HEARTBEATS heartbeats anyway (a lost wake
  heals by itself), and every heartbeat while a tab is behind (to cut it once it stalls).
- A new tab that starts caught up needs no read of its own when the user hands out nothing
  newer than its cursor: no read running, and every other tab open, not behind, and not
  past it.
- A wake for an entry every local tab already has asks for nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol, TypeVar

from push.model.keys import parse_event_id

#: Where a stream starts without a cursor of its own or a delivered mark.
START_OF_HISTORY = "0-0"
#: Heartbeats without a wake after which a user reads the history anyway.
RECHECK_HEARTBEATS = 4


class Reader(Protocol):
    """What the rules see of a tab."""

    @property
    def closed(self) -> bool: ...

    behind: bool
    cursor_key: tuple[int, int]


R = TypeVar("R", bound=Reader)


def start_cursor(requested: str | None, mark: str | None) -> str:
    """Where a new stream starts: the client's cursor, else the delivered mark, else 0-0."""
    return requested or mark or START_OF_HISTORY


def starts_caught_up(history_caught_up: bool, start: str, mark: str | None) -> bool:
    """Whether a stream starting at `start` has everything the history held at admission
    (`history_caught_up`: nothing after `start`), as far as the delivered mark can tell."""
    return history_caught_up and (mark is None or parse_event_id(start) >= parse_event_id(mark))


def readers(tabs: Iterable[R]) -> list[R]:
    """The tabs a read of the history is for: open, and not behind."""
    return [tab for tab in tabs if not tab.closed and not tab.behind]


def read_start(readers: Iterable[Reader]) -> tuple[int, int]:
    """The cursor a read starts after: the oldest among `readers` (not empty)."""
    return min(tab.cursor_key for tab in readers)


def read_again(got: int, batch: int, all_covered: bool) -> bool:
    """Whether to read again after a read of `batch` entries at most returned `got`."""
    return got >= batch or not all_covered


def read_due(quiet_heartbeats: int, any_behind: bool) -> bool:
    """Whether a user reads on this heartbeat, `quiet_heartbeats` since its last read."""
    return quiet_heartbeats >= RECHECK_HEARTBEATS or any_behind


def nothing_after(cursor: tuple[int, int], tabs: Iterable[Reader], reading: bool) -> bool:
    """Whether a user reading (`reading`) or not, with `tabs`, has handed out nothing newer
    than `cursor`."""
    if reading:
        return False
    return all(not tab.closed and not tab.behind and tab.cursor_key <= cursor for tab in tabs)


def wake_is_old(newest: tuple[int, int] | None, tabs: Collection[Reader]) -> bool:
    """Whether every one of `tabs` (at least one) already has the wake's `newest` entry
    (None: the wake named no id this service reads)."""
    if newest is None or not tabs:
        return False
    return all(tab.cursor_key >= newest for tab in tabs)
