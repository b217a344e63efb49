"""Which entries a tab keeps from an offer, and when a tab that fell behind is cut.

The rules, in words:

- A tab's cursor is the newest entry it has queued (or the client's resume point).
- A read that began after a tab's cursor (`read_from`, the cursor it was made from) does
  not cover that tab: the tab takes nothing from it, or it would skip what lies between;
  its user reads again from the tab's own cursor.
- When the history was trimmed past a tab's cursor, the tab is told first (a reset to the
  newest trimmed id) and continues from there.
- Of the entries, a tab keeps only those after its cursor.
- It keeps at most its outbox's free room: with room for all, all (TAKE_ALL); with room
  for some, that many, and it is behind (TAKE_ROOM): it asks for the rest itself once it
  has written them.
- A tab with something to take and no room at all, while its writer holds a batch it has
  not finished writing, has a whole outbox unread: its client is not reading, and it is
  cut (CUT); the client resumes by id. With no room but a writer that has not come for
  the outbox yet (a resume read several batches before the writer first ran), it takes
  nothing and is behind (WAIT): it asks for the rest once it has written.
- A tab that stays behind (took a full outbox and wrote none of it) for STALLED_S is cut.
"""

from __future__ import annotations

from push.model.entries import Entry

#: The tab takes every entry offered after its cursor.
TAKE_ALL = "take all"
#: The tab takes as many as its outbox has room for and is behind.
TAKE_ROOM = "take room"
#: The tab's outbox is full and its writer is stuck on a batch: it is cut (OUTBOX_FULL).
CUT = "cut"
#: The tab's outbox is full but its writer has not taken it yet: it takes nothing, is behind.
WAIT = "wait"
#: A tab behind for this long without writing its outbox is cut (it resumes).
STALLED_S = 10.0


def covers(read_from: tuple[int, int] | None, cursor: tuple[int, int]) -> bool:
    """Whether a read that began at `read_from` (None: not a read) holds everything after
    `cursor`."""
    return read_from is None or cursor >= read_from


def resets(cursor: tuple[int, int], trimmed: tuple[int, int]) -> bool:
    """Whether a tab at `cursor` lost entries to a trim up to `trimmed`."""
    return cursor < trimmed


def after(entries: list[Entry], cursor: tuple[int, int]) -> list[Entry]:
    """The entries (in history order) after `cursor`; the same list when all of them are."""
    if entries and entries[0].key <= cursor:
        return [entry for entry in entries if entry.key > cursor]
    return entries


def fit(count: int, room: int, writing: bool) -> str:
    """What a tab does with `count` new entries (count > 0) and `room` free places, while
    its writer holds an unwritten batch (`writing`) or not."""
    if room <= 0:
        return CUT if writing else WAIT
    if count > room:
        return TAKE_ROOM
    return TAKE_ALL


def stalled(behind: bool, behind_since: float, now: float) -> bool:
    """Whether a tab behind since `behind_since` has stalled (monotonic seconds)."""
    return behind and now - behind_since > STALLED_S
