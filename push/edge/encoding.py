"""Entries encoded once for all the tabs that get them.

A user's entry goes to each of its local tabs as one Entry object, and the tabs share
the transport's encoding of it (an SSE event, a WebSocket frame: neither depends on
the tab). The first tab to write an entry encodes it and keeps the bytes on
the entry; they go when the entry goes, once every tab has written it.
"""

from __future__ import annotations

from collections.abc import Callable

from push.model.entries import Entry


def once_per_entry(encode: Callable[[Entry], bytes]) -> Callable[[Entry], bytes]:
    """`encode`, run once per entry: its answer is kept on the entry."""

    def encoded(entry: Entry) -> bytes:
        kept = entry.encoded
        if kept is None:
            kept = entry.encoded = {}
        value = kept.get(encode)
        if value is None:
            value = kept[encode] = encode(entry)
        return value

    return encoded
