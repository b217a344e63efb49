"""What one chaos client received: payload sequence numbers, deduplicated by event id, so
a run can say exactly what is missing, duplicated or out of order."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Record:
    """What one client received, deduplicated by event id, as sequence numbers."""

    user: str
    kind: str
    transport: str
    seqs: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    first_seen: dict[str, int] = field(default_factory=dict)  # event id -> session
    dup_ids_across_reconnects: int = 0
    dup_ids_same_connection: int = 0
    dup_seqs: int = 0
    reorders: list[tuple[int, int]] = field(default_factory=list)
    resets: int = 0
    sessions: int = 0
    reconnects: int = 0
    idle_timeouts: int = 0
    session_firsts: list[int] = field(default_factory=list)  # first new seq of each session
    refusals: Counter = field(default_factory=Counter)
    closes: Counter = field(default_factory=Counter)
    last_id: str | None = None
    _seen: set[int] = field(default_factory=set)
    _max_seq: int = -1
    _first_due: bool = False

    def new_session(self) -> None:
        self.sessions += 1
        self._first_due = True

    def accept(self, event_id: str | None, data: str) -> None:
        """Record one message event (a page would show it unless it saw its id before)."""
        if event_id is None:
            raise ValueError("an event without an id cannot be resumed from")
        first = self.first_seen.get(event_id)
        if first is not None:
            if first == self.sessions:
                self.dup_ids_same_connection += 1
            else:
                self.dup_ids_across_reconnects += 1
            return
        self.first_seen[event_id] = self.sessions
        self.last_id = event_id
        seq_text, stamp, *_ = data.split(" ", 2)
        seq = int(seq_text)
        if seq in self._seen:
            self.dup_seqs += 1
            return
        if seq < self._max_seq:
            self.reorders.append((self._max_seq, seq))
        self._seen.add(seq)
        self._max_seq = max(self._max_seq, seq)
        self.seqs.append(seq)
        if self._first_due:
            self.session_firsts.append(seq)
            self._first_due = False
        self.latencies_ms.append((time.time_ns() - int(stamp)) / 1e6)

    def reset(self, event_id: str) -> None:
        self.resets += 1
        self.last_id = event_id

    def has(self, seq: int) -> bool:
        return seq in self._seen

    def summary(self) -> dict:
        """A picklable copy without the bulky id map."""
        return {
            "user": self.user,
            "kind": self.kind,
            "transport": self.transport,
            "seqs": self.seqs,
            "latencies_ms": self.latencies_ms,
            "dup_ids_across_reconnects": self.dup_ids_across_reconnects,
            "dup_ids_same_connection": self.dup_ids_same_connection,
            "dup_seqs": self.dup_seqs,
            "reorders": self.reorders,
            "resets": self.resets,
            "sessions": self.sessions,
            "session_firsts": self.session_firsts,
            "reconnects": self.reconnects,
            "idle_timeouts": self.idle_timeouts,
            "refusals": dict(self.refusals),
            "closes": dict(self.closes),
        }
