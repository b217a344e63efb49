"""What a WebSocket client sends, handled in the reader (push/edge/ws_view.py ClientFrames)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from push.delivery.tab import Tab
from push.edge.ws_view import CLOSE_BAD_FRAME, CLOSE_INTERNAL_ERROR, ClientFrames
from push.model.entries import history_entry


def entry(n: int):
    return history_entry(f"{1_700_000_000_000 + n}-0", n, f"m{n}")


def frames_of(*texts: str, on_ack=None, on_renewal=None):
    ws = SimpleNamespace(input_buffer=list(texts), connected=True)
    tab = Tab("c", "u", "ws", "0-0", 10)
    acked: list[tuple[int, int]] = []
    frames = ClientFrames(ws, tab, on_ack or acked.append, on_renewal or (lambda token: None))
    return frames, ws, tab, acked


def ack(n: int) -> str:
    return json.dumps({"ack": entry(n).id})


def test_only_acks_of_entries_handed_to_the_connection_and_newer_than_its_last_go_on() -> None:
    frames, ws, tab, acked = frames_of(ack(1))
    frames()  # nothing handed yet
    assert acked == []
    frames.handing([entry(1), entry(2), entry(3)])
    ws.input_buffer.extend([ack(2), ack(1), ack(2), ack(4), ack(3)])
    frames()
    assert acked == [entry(2).key, entry(3).key]
    assert frames.refusal is None and not tab.closed


def test_a_failure_while_handling_a_frame_closes_1011_and_does_not_raise() -> None:
    def broken(key):
        raise RuntimeError("broken")

    frames, _, tab, _ = frames_of(ack(1), on_ack=broken)
    frames.handing([entry(1)])
    frames()
    assert frames.refusal == (CLOSE_INTERNAL_ERROR, "internal error")
    assert tab.closed


def test_an_id_past_2_to_the_64_closes_4400_with_a_reason() -> None:
    frames, _, tab, acked = frames_of(json.dumps({"ack": f"{2**64}-0"}))
    frames.handing([entry(1)])
    frames()
    code, reason = frames.refusal
    assert code == CLOSE_BAD_FRAME and "18446744073709551615" in reason
    assert acked == [] and tab.closed
