"""The watcher's timers: which users are due for a drain without a hint.

Every decision the watcher makes about a user without a hint is "drain it at time t"
(look again after the heal interval, after a full window's recheck, after a lease wait,
once dense mail has gathered). The rules, in words:

- A user has one time it is to be looked at (`look_at`); a new one replaces the old, later
  or sooner.
- Only a sooner time queues a timer; a later one is found when the earlier timer fires
  (it is queued again for the later time then). So the heap holds one live timer per user
  however often its time moves, and fires no earlier than asked.
- A fired timer that is not the user's live one (a sooner one replaced it), or of a user
  that is gone or moved to another node, is dropped.
- An item that moves to another timetable (a user to another node) leaves its timer here
  behind, dropped when it fires; its new timetable queues timers of its own from then on.
- The loop waits for the next timer, and never longer than the heal interval.

Plain code: the caller passes the clock, and items keep their own two times (slots, not a
dict per user).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    """An item with the two times the timetable keeps on it."""

    #: When it is to be looked at next (monotonic seconds).
    look_at: float
    #: The time of its live timer in the heap (None: none queued).
    queued_at: float | None


T = TypeVar("T", bound=Timed)


class Timetable(Generic[T]):
    """A heap of "look at this item at time t", one live timer per item."""

    __slots__ = ("_heap", "_sequence")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, item: T, when: float) -> None:
        """Look at `item` at `when` (replacing the time asked before)."""
        item.look_at = when
        if item.queued_at is None or when < item.queued_at:
            item.queued_at = when
            heapq.heappush(self._heap, (when, next(self._sequence), item))

    def drop(self, item: T) -> None:
        """`item` leaves this timetable: its timer here is dropped when it fires (the
        caller's `current` says so), and holds back no timer queued for it elsewhere."""
        item.queued_at = None

    def wait_s(self, now: float, longest: float) -> float:
        """Seconds until the next timer fires, at most `longest`."""
        if not self._heap:
            return longest
        return max(0.0, min(longest, self._heap[0][0] - now))

    def due(self, now: float, current: Callable[[T], bool]) -> Iterator[T]:
        """The items due at `now`, among those still `current`."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, item = heapq.heappop(heap)
            if not current(item) or item.queued_at != at:
                continue
            item.queued_at = None
            if item.look_at <= now:
                yield item
            else:
                self.at(item, item.look_at)
