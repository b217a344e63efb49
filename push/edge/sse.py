"""Server-Sent Events framing: values in, bytes out, no I/O.

Theory of operation: an event is a block of `field: value` lines ended by a
blank line. A payload may hold any line breaks, so it is split on `\\r\\n`,
`\\r` and `\\n` into one `data:` line each; the browser joins them with `\\n`.
That is the one intentional change SSE makes to a payload: every line break
arrives as `\\n` (WebSocket frames carry the payload byte for byte). `id` and
`event` come from this service and never hold line breaks; they are checked
anyway, since a break there would let a payload forge fields.
"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"an SSE {name} may not hold a line break or NUL")
    return f"{name}: {value}\n"


def encode_event(data: str, event_id: str | None = None, event: str | None = None) -> bytes:
    """One event: optional `event:` and `id:` lines, one `data:` line per payload line."""
    head = ""
    if event is not None:
        head += _field("event", event)
    if event_id is not None:
        head += _field("id", event_id)
    if "\n" in data or "\r" in data:
        body = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    else:
        body = f"data: {data}\n"
    return (head + body + "\n").encode()


def encode_comment(text: str = "") -> bytes:
    """A comment line (`: text`): ignored by clients, keeps proxies from timing out."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)).encode() + b"\n"


def encode_retry(milliseconds: int) -> bytes:
    """The reconnect delay hint EventSource honours."""
    if not isinstance(milliseconds, int) or milliseconds < 0:
        raise ValueError("retry is a whole number of milliseconds")
    return f"retry: {milliseconds}\n\n".encode()
