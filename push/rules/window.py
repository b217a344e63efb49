"""Flow control: how far the history may run ahead of what the user's tabs were written,
and when a drainer drains again.

The drain script (lua/drain.lua) moves mail only while the history is less than a window
(PUSH_WINDOW entries) ahead of the user's delivered mark, and answers whether mail is left
(`more`) and how much room the window has left (`room`). The rules, in words:

- Mail left and room left: drain again at once (AGAIN).
- Mail left and no room: the window is full; drain again when the delivered mark moves,
  or after WINDOW_RECHECK_S at the latest, since a tab on another worker may have moved
  it (WAIT_FOR_ROOM).
- Nothing left: wait for mail (WAIT_FOR_MAIL).
- Dense mail (a drain moved more than one message) lets the next batch gather for
  GATHER_S before the next drain (the watcher): fewer drains, wakes and socket writes per
  message. The first message after a quiet spell is drained at once.
- Sparse mail (the last drain moved one message at most, or the last wait for mail took
  longer than SPARSE_WAIT_S) is drained in the same round trip as the wait (the blocking
  mover): the lowest latency when there is nothing to batch.
"""

from __future__ import annotations

#: Drain again now.
AGAIN = "again"
#: The window is full: drain again once it has room.
WAIT_FOR_ROOM = "wait for room"
#: The mailbox is empty: drain again once mail comes.
WAIT_FOR_MAIL = "wait for mail"

#: While the window is full a drainer looks again this often even without a local signal
#: (a tab on another worker may have advanced the delivered mark).
WINDOW_RECHECK_S = 1.0
#: A drain that moved more than one message (mail is dense) is followed by the next one
#: this much later at the soonest, so that the next batch gathers: fewer drains, wakes and
#: socket writes per message. The first message after a quiet spell is drained at once,
#: so light load does not wait. Measured (bench, full plan, one run each): 200 users x 5
#: tabs 129,000 deliveries/s at 5 ms (blocking movers 182,000), 207,000 at 50 ms; 8,000
#: users x 1 12,700 and 15,600. Under load a user's later messages wait up to this long.
GATHER_S = 0.05
#: The blocking mover's next wait drains in the same round trip when mail is sparse: the
#: last drain moved one message at most (there was nothing to batch), or the last wait
#: blocked longer than this. Measured (bench, throughput run): with the time alone at
#: 0.2 s, users under load with gaps of a few hundred ms counted as sparse, and their
#: one-message drains cost 12 % of the throughput; at 1 s, none was lost.
SPARSE_WAIT_S = 1.0


def after_drain(more: bool, room: int) -> str:
    """What a drainer does after a drain that left `more` mail and `room` in the window."""
    if more and room > 0:
        return AGAIN
    if more:
        return WAIT_FOR_ROOM
    return WAIT_FOR_MAIL


def dense(moved: int) -> bool:
    """Whether a drain that moved `moved` messages found dense mail (the next one gathers)."""
    return moved > 1


def gathering(gather_until: float, now: float) -> bool:
    """Whether a drain asked for `now` waits until `gather_until` instead."""
    return gather_until > now


def sparse(moved: int, waited_s: float) -> bool:
    """Whether mail is sparse after a wait of `waited_s` and a drain that moved `moved`."""
    return moved <= 1 or waited_s > SPARSE_WAIT_S
