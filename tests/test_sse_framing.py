"""SSE framing: a table of (values, bytes), as h11 tests its encoder."""

from __future__ import annotations

import pytest

from push.edge.sse import encode_comment, encode_event, encode_retry


@pytest.mark.parametrize(
    ("data", "event_id", "event", "expected"),
    [
        ("hello", None, None, b"data: hello\n\n"),
        ("hello", "1-0", None, b"id: 1-0\ndata: hello\n\n"),
        ("a\nb", "1-0", None, b"id: 1-0\ndata: a\ndata: b\n\n"),
        ("a\r\nb", None, None, b"data: a\ndata: b\n\n"),
        ("a\rb", None, None, b"data: a\ndata: b\n\n"),
        ("a\n\nb", None, None, b"data: a\ndata: \ndata: b\n\n"),
        ("", None, None, b"data: \n\n"),
        ("trailing\n", None, None, b"data: trailing\ndata: \n\n"),
        (" spaced", None, None, b"data:  spaced\n\n"),
        ("id: 9\n\ndata: forged", None, None, b"data: id: 9\ndata: \ndata: data: forged\n\n"),
        ("héllo ✓", None, None, "data: héllo ✓\n\n".encode()),
        ("5-0", "5-0", "reset", b"event: reset\nid: 5-0\ndata: 5-0\n\n"),
    ],
)
def test_encode_event(data, event_id, event, expected):
    assert encode_event(data, event_id=event_id, event=event) == expected


@pytest.mark.parametrize("bad", ["1\n2", "1\r2", "x\0"])
def test_ids_and_event_names_cannot_hold_line_breaks(bad):
    with pytest.raises(ValueError):
        encode_event("x", event_id=bad)
    with pytest.raises(ValueError):
        encode_event("x", event=bad)


def test_comments_and_retry():
    assert encode_comment("keepalive") == b": keepalive\n\n"
    assert encode_comment("two\nlines") == b": two\n: lines\n\n"
    assert encode_retry(2500) == b"retry: 2500\n\n"
    with pytest.raises(ValueError):
        encode_retry(-1)
