"""Entries are encoded once for all the tabs that get them (push/edge/encoding.py)."""

from __future__ import annotations

import json

from wsproto.frame_protocol import FrameProtocol

from push.edge.sse_view import entry_event
from push.edge.ws_view import entry_frame
from push.model.entries import Entry, history_entry


def entry(data: str, n: int = 1) -> Entry:
    return history_entry(f"{1_700_000_000_000 + n}-0", n, data)


def test_a_small_entry_is_encoded_once_per_transport():
    small = entry("a like")
    assert entry_event(small) is entry_event(small)
    assert entry_frame(small) is entry_frame(small)
    assert entry_event(small) == b"id: 1700000000001-0\ndata: a like\n\n"


def test_the_encodings_are_kept_on_the_entry_and_go_with_it():
    """Nothing is kept process-wide: another Entry object (another read of the same
    message) is encoded afresh, to the same bytes."""
    first = entry("x" * 100_000, n=2)
    again = entry("x" * 100_000, n=2)
    assert entry_event(first) is entry_event(first)
    assert entry_frame(first) is entry_frame(first)
    assert len(first.encoded) == 2  # one per transport
    assert entry_event(again) == entry_event(first)
    assert entry_event(again) is not entry_event(first)


def test_the_shared_frame_is_a_whole_unmasked_text_frame():
    reader = FrameProtocol(client=True, extensions=[])  # a client reads server frames
    reader.receive_bytes(entry_frame(entry("héllo\nwörld", n=3)))
    (frame,) = list(reader.received_frames())
    assert frame.message_finished
    assert json.loads(frame.payload) == {"id": "1700000000003-0", "data": "héllo\nwörld"}
