"""One open tab: where it is in the user's history, and a bounded outbox.

The user's LocalUser offers history entries to each tab; the tab keeps those after its
own cursor (which ones: push/rules/offers.py). The transport's writer takes everything
queued in one go and writes it in one socket write. A tab whose outbox overflows is
closed: its client resumes from the last id it received, so a slow reader costs bounded
memory and loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gevent
from gevent import get_hub
from gevent.event import Event

from push.delivery.tally import TALLY
from push.metrics import DELIVERED, RESETS
from push.model.entries import Entry
from push.model.keys import parse_event_id
from push.rules.offers import CUT, TAKE_ROOM, WAIT, after, covers, fit, resets

OUTBOX_FULL = "outbox full"
CLIENT_LEFT = "client left"
SERVICE_RESTART = "service restart"
#: The credential the stream was opened (or last renewed) with has expired.
TOKEN_EXPIRED = "token expired"
#: The user was disconnected (POST /api/users/<id>/disconnect, push.disconnect).
REVOKED = "revoked"
#: Seconds a tab cut for a full outbox gets to close cleanly before its socket is.
OUTBOX_GRACE_S = 2.0


#: push_messages_delivered_total's child of each transport, looked up once.
_DELIVERED = {transport: DELIVERED.labels(transport) for transport in ("sse", "ws")}


@dataclass(frozen=True, slots=True)
class Reset:
    """The client's cursor was older than the history kept; it continues after `id`."""

    id: str


class Tab:
    """A live SSE or WebSocket client of one user."""

    # One per open stream: slots instead of a dict per instance.
    __slots__ = (
        "_deadline",
        "_outbox",
        "_ready",
        "abort",
        "behind",
        "behind_since",
        "close_detail",
        "closed_reason",
        "cursor_key",
        "finished",
        "id",
        "on_drained",
        "opened_at",
        "outbox_max",
        "sent",
        "transport",
        "user_id",
        "writing",
    )

    def __init__(self, id: str, user_id: str, transport: str, cursor: str, outbox_max: int) -> None:
        self.id = id
        self.user_id = user_id
        self.transport = transport
        self.cursor_key = parse_event_id(cursor)
        self.outbox_max = outbox_max
        self.opened_at = time.monotonic()
        self.sent = 0
        self.closed_reason: str | None = None
        #: What the client is told beside the reason (a revocation's reason), if anything.
        self.close_detail = ""
        #: The timer that closes the tab when its credential expires.
        self._deadline: Any = None
        # A list: an empty deque allocates a 64-slot block up front, for every stream.
        self._outbox: list[Entry | Reset] = []
        self._ready = Event()
        #: More was there than the outbox took; `on_drained` asks for it once written.
        self.behind = False
        self.behind_since = 0.0
        self.on_drained: Callable[[], None] | None = None
        #: Cuts the socket: a writer blocked on a client that stopped reading never
        #: returns by itself. Set by the transport.
        self.abort: Callable[[], None] | None = None
        #: Set by the transport when its writer has returned.
        self.finished = False
        #: The writer holds a batch it has not finished writing (see `offer`).
        self.writing = False

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.opened_at

    @property
    def closed(self) -> bool:
        return self.closed_reason is not None

    def offer(
        self,
        entries: list[Entry],
        trimmed: str | None = None,
        read_from: tuple[int, int] | None = None,
    ) -> bool:
        """Queue the entries after this tab's cursor, by the rules of push/rules/offers.py.

        `read_from` is where the read that produced `entries` began; False if it does not
        cover this tab (the caller reads again for it). What did not fit waits for the next
        read, which the writer asks for (`on_drained`) once it has written what it took."""
        if self.closed or self.behind:
            return True  # a tab that is behind asks for more itself
        cursor = self.cursor_key
        if not covers(read_from, cursor):
            return False
        if trimmed is not None:
            trimmed_key = parse_event_id(trimmed)
            if resets(cursor, trimmed_key):
                self._outbox.append(Reset(trimmed))
                self.cursor_key = cursor = trimmed_key
        entries = after(entries, cursor)
        if not entries:
            if self._outbox:
                self._ready.set()
            return True
        room = self.outbox_max - len(self._outbox)
        verdict = fit(len(entries), room, self.writing)
        if verdict == CUT:
            self.close(OUTBOX_FULL)  # a whole outbox unread: the client is not reading
            return True
        if verdict == WAIT:
            self.behind = True
            self.behind_since = time.monotonic()
            self._ready.set()
            return True
        if verdict == TAKE_ROOM:
            entries = entries[:room]
            self.behind = True
            self.behind_since = time.monotonic()
        self._outbox.extend(entries)
        self.cursor_key = entries[-1].key
        self._ready.set()
        return True

    def next_batch(self, timeout: float) -> list[Entry | Reset]:
        """Everything queued, waiting up to `timeout` for something; [] on timeout or close."""
        if not self._outbox and not self.closed:
            self._ready.wait(timeout)
        self._ready.clear()
        if self.closed:
            return []
        batch, self._outbox = self._outbox, []
        self.writing = bool(batch)
        if self.behind and self.on_drained is not None:
            self.behind = False
            self.on_drained()
        return batch

    def expire_at(self, when: float | None) -> None:
        """Close the tab (TOKEN_EXPIRED) at `when`, seconds since the epoch, or
        never (None); replaces the deadline set before. One timer on the event loop: no
        clock is read per message."""
        if self._deadline is not None:
            self._deadline.stop()
            self._deadline.close()
            self._deadline = None
        if when is None or self.closed:
            return
        self._deadline = get_hub().loop.timer(max(0.0, when - time.time()))
        self._deadline.start(self.close, TOKEN_EXPIRED)

    def close(self, reason: str, detail: str = "") -> None:
        """Ask the writer to stop; the first reason given is kept.

        A tab cut for a full outbox is given OUTBOX_GRACE_S to end by itself (its
        writer may be blocked on the client's closed window); then its socket is cut."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self.close_detail = detail
            if self._deadline is not None:  # the timer holds the tab until it fires
                self._deadline.stop()
                self._deadline = None
            if reason == OUTBOX_FULL and self.abort is not None:
                gevent.spawn_later(OUTBOX_GRACE_S, self._abort_if_still_open)
        self._ready.set()

    def _abort_if_still_open(self) -> None:
        if not self.finished and self.abort is not None:
            self.abort()

    def batches(
        self, heartbeat_s: float, written: Callable[[Entry], None]
    ) -> Iterator[list[Entry | Reset]]:
        """What the writer writes, batch by batch, until the tab closes.

        An empty batch means a heartbeat is due. When the writer asks for the next
        batch, the previous one is on the socket: its newest entry is reported to
        `written`, which advances the user's delivered mark."""
        while True:
            batch = self.next_batch(heartbeat_s)
            if self.closed:
                return
            yield batch
            self.wrote(batch, written)

    def wrote(self, batch: list[Entry | Reset], written: Callable[[Entry], None]) -> None:
        """`batch` is on the socket: count it, and report its newest entry to `written`
        (which advances the user's delivered mark)."""
        self.writing = False
        entries = [item for item in batch if isinstance(item, Entry)]
        if len(entries) < len(batch):
            TALLY.count(RESETS, len(batch) - len(entries))
        if entries:
            self.sent += len(entries)
            TALLY.count(_DELIVERED[self.transport], len(entries))
            TALLY.delay(max(0.0, time.time() - entries[0].key[0] / 1000))
            written(entries[-1])
