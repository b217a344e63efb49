"""One local user's mailbox as the mailbox watcher sees it: no greenlet of its own, a few
slots of state, and the node (`NodeWatch`, node_watch.py) whose connection watches it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from push.model.entries import DrainResult
from push.model.keys import UserKeys
from push.rules.lease import holder_worker


class Node(Protocol):
    """What the watcher asks of the node a user is placed on (node_watch.py)."""

    def drain_now(self, user: WatchedMailbox) -> None: ...
    def remove(self, user: WatchedMailbox) -> None: ...


class WatchedMailbox:
    """One local user's mailbox, as the watcher sees it; no greenlet of its own."""

    __slots__ = (
        "gather_until",
        "holder",
        "holding",
        "key",
        "keys",
        "look_at",
        "node",
        "on_moved",
        "on_reopened",
        "packed",
        "queued_at",
        "steal_from",
        "stopped",
        "window_full",
    )

    def __init__(
        self,
        keys: UserKeys,
        on_moved: Callable[[DrainResult], None],
        on_reopened: Callable[[], None],
    ) -> None:
        self.keys = keys
        self.key = keys.mailbox.encode()
        #: Called with what a drain moved; `on_reopened` after the watcher's connection was
        #: lost and opened again (answers lost with it left entries for the pump to read).
        self.on_moved = on_moved
        self.on_reopened = on_reopened
        #: Whether this worker holds the user's lease (as its last drain found).
        self.holding = False
        #: The other drainer that holds the lease, when this worker waits for it.
        self.holder: str | None = None
        #: A holder whose worker the switchboard confirmed dead: the next claim steals from it.
        self.steal_from: str | None = None
        self.window_full = False
        #: Dense mail: the next drain waits until then (GATHER_S).
        self.gather_until = 0.0
        self.stopped = False
        self.node: Node | None = None
        #: When this user is to be drained next without a hint (monotonic seconds), and
        #: the earliest time it has a timer queued for.
        self.look_at = 0.0
        self.queued_at: float | None = None
        #: This user's turn in a pipeline, packed while its mail flows and dropped when a
        #: drain finds nothing (most users are idle: 600 bytes each): its drain with a
        #: claim on the lease, then `CLIENT CACHING yes` and `LLEN mailbox`, which arm its
        #: hint again.
        self.packed = b""

    @property
    def holder_worker(self) -> str | None:
        """The other worker whose drainer holds the lease while this one waits."""
        return holder_worker(self.holder) if self.holder else None
