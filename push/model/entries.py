"""What the delivery path carries: history entries, drain results, receipts and marks.

Plain values, no I/O: every layer may use them (the Redis layer builds them from replies,
delivery passes them to tabs, the edge frames them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from push.model.keys import history_key


@dataclass(slots=True)
class Entry:
    """One message in a user's history, ready to frame for any transport.

    One Entry object goes to all the local tabs that get it, and keeps its encodings
    for them (push/edge/encoding.py). Not frozen: a frozen dataclass sets each field through
    object.__setattr__, and the delivery path makes one Entry per message."""

    id: str
    key: tuple[int, int]
    n: int
    data: str
    #: The transports' encodings of this entry, made by the first tab that writes it.
    encoded: dict | None = field(default=None, compare=False, repr=False)


def history_entry(event_id: str, n: int, data: str) -> Entry:
    """An entry as the history holds it (Redis gave the id: parsed without checks)."""
    return Entry(event_id, history_key(event_id), n, data)


def drain_result(raw: list) -> DrainResult:
    """What lua/drain.lua answered."""
    moved, dead, room, more, last_id, reasons, previous, added, holder, capped = raw
    return DrainResult(
        moved=moved,
        dead=dead,
        room=room,
        more=bool(more),
        last_id=last_id.decode() if last_id else None,
        dead_reasons=[reason.decode() for reason in reasons],
        previous_id=previous.decode() if previous else None,
        entries=[history_entry(raw_id.decode(), n, data.decode()) for raw_id, n, data in added],
        holder=holder.decode() if holder else None,
        capped=capped,
    )


def split_wake(data: bytes) -> tuple[str, bytes]:
    """A wake published by lua/drain.lua: its newest id, and the entries it carries
    (still encoded; b"" if none)."""
    newest, _, carried = data.partition(b" ")
    return newest.decode(), carried


def carried_entries(carried: bytes) -> tuple[str, list[Entry]]:
    """The id before a wake's entries ("" if the history was empty) and the entries
    (ValueError if they are not what drain.lua writes)."""
    previous_id, added = json.loads(carried)
    return previous_id, [history_entry(event_id, n, data) for event_id, n, data in added]


@dataclass(frozen=True, slots=True)
class Mark:
    """An event id and when (ms since the epoch, Redis's clock) it was reached."""

    id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Receipts:
    #: Messages still in the mailbox (and in flight to the history).
    waiting: int
    #: The newest message written to any of the user's connections.
    delivered: Mark | None
    #: The newest message a client said it showed.
    acknowledged: Mark | None
    #: Messages that left the mailbox and were not acknowledged.
    unacknowledged: int


@dataclass(frozen=True, slots=True)
class DrainLimits:
    """What one drain may do (see lua/drain.lua)."""

    #: Entries the history may hold past the delivered mark.
    window: int
    #: Messages moved per call.
    batch: int
    history_max: int
    ttl_s: int
    max_message_bytes: int
    #: The mailbox's cap (0: none) and the expiry its drains renew (ms; 0: none).
    mailbox_max: int = 0
    mailbox_expiry_ms: int = 0
    #: Bytes kept of a dead letter, and the dead-letter list's TTL (0: none).
    dead_letter_bytes: int = 0
    dead_letter_ttl_s: int = 0
    #: Dead letters kept per user (0: the script's default, 1000).
    dead_letter_count: int = 0


@dataclass(frozen=True, slots=True)
class DrainResult:
    moved: int
    dead: int
    room: int
    more: bool
    last_id: str | None
    dead_reasons: list[str]
    #: The id the history ended with before this drain (None: it was empty).
    previous_id: str | None
    #: What this drain added, in order.
    entries: list[Entry]
    #: Another drainer holds the user's lease (a drain with a claim moved nothing).
    holder: str | None = None
    #: The oldest messages the mailbox's cap dropped.
    capped: int = 0


@dataclass(frozen=True, slots=True)
class LeaseClaim:
    """Who drains: only the holder of the user's mover lease (lua/drain.lua)."""

    #: The claimant: a worker's watcher, `<worker id>#watch`.
    holder: str
    #: "claim" takes a free lease; "steal" also takes it from `dead_holder`.
    op: str = "claim"
    dead_holder: str = ""
