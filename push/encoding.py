"""Entries encoded once for all the tabs that get them.

A user's entry goes to each of its tabs, which share the transport's encoding of it
(an SSE event, a WebSocket frame: neither depends on the connection), so each
transport keeps the encodings of its most recent entries. Large entries are encoded
per tab rather than kept.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from push.store import Entry

#: Entries whose encoding is kept, per transport: enough for the writes of one wake.
ENTRIES_KEPT = 1024
#: Entries with a longer payload are not kept (the cache stays under a few MB).
KEPT_CHARS_MAX = 2048


def once_per_entry(encode: Callable[[Entry], bytes]) -> Callable[[Entry], bytes]:
    """`encode`, remembering its answers for recent entries of up to KEPT_CHARS_MAX."""
    kept = lru_cache(maxsize=ENTRIES_KEPT)(encode)

    def encoded(entry: Entry) -> bytes:
        return kept(entry) if len(entry.data) <= KEPT_CHARS_MAX else encode(entry)

    return encoded
