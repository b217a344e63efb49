"""GET /stream: Server-Sent Events for EventSource and `curl -N`."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, g, request

from push.delivery.switchboard import Switchboard
from push.delivery.tab import (
    CLIENT_LEFT,
    REVOKED,
    SERVICE_RESTART,
    TOKEN_EXPIRED,
    Reset,
    Tab,
)
from push.edge.admission import (
    Admission,
    Unavailable,
    admit,
    release,
    release_unless_taken,
    stream_deadline,
)
from push.edge.encoding import once_per_entry
from push.edge.hangup import client_socket, cut, watch_for_hangup
from push.edge.hello import sse_hello, wants_hello
from push.edge.origins import add_cors_headers
from push.edge.parts import parts
from push.edge.sse import encode_comment, encode_event, encode_retry
from push.metrics import CLOSED, CONNECTIONS, OPEN_CONNECTIONS, RESULT_BY_STATUS, closed_label
from push.model.entries import Entry
from push.model.errors import Refusal
from push.model.settings import DeliverySettings

bp = Blueprint("stream", __name__)
log = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEPALIVE = encode_comment("keepalive")
#: The last event of a stream whose token expired: reconnect with a fresh credential
#: (EventSource reconnects by itself with the same URL and cookie; push.js asks getToken).
EXPIRED_EVENT = encode_event(json.dumps({"error": "token_expired"}), event="expired")


def revoked_event(reason: str) -> bytes:
    """The last event of a stream whose user was disconnected."""
    return encode_event(json.dumps({"error": "revoked", "reason": reason}), event="revoked")


def jittered_retry(retry_ms: int) -> bytes:
    """A `retry:` line spread over +50 %, so reconnects do not arrive in one second."""
    return encode_retry(retry_ms + random.randint(0, retry_ms // 2))


@once_per_entry
def entry_event(entry: Entry) -> bytes:
    return encode_event(entry.data, event_id=entry.id)


def frame(batch: list[Entry | Reset]) -> bytes:
    return b"".join(
        encode_event(item.id, event_id=item.id, event="reset")
        if isinstance(item, Reset)
        else entry_event(item)
        for item in batch
    )


class StreamBody:
    """The response body: the server iterates `events` itself and calls `close` when the
    stream ends, whether it ever started or not (PEP 3333).

    Passed through as it is (werkzeug's `direct_passthrough`), so werkzeug wraps it in
    neither its encoding generator nor its closing iterator: a parked stream's greenlet
    saves its C stack, and each of those is a frame more in it (about 1 KB a stream)."""

    __slots__ = ("_events", "_on_close")

    def __init__(self, events: Iterator[bytes], on_close: Callable[[], None]) -> None:
        self._events = events
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def close(self) -> None:
        try:
            self._events.close()
        finally:
            self._on_close()


@bp.before_request
def admit_stream() -> Response | None:
    settings: DeliverySettings = parts().delivery
    try:
        admit(request)
    except Unavailable as why:
        # Never a 503: a native EventSource would give up for good. 200, retry, close.
        CONNECTIONS.labels("sse", "unavailable").inc()
        body = jittered_retry(settings.retry_ms) + encode_comment(
            f"{why}; reconnect after the retry delay"
        )
        return Response(body, mimetype="text/event-stream", headers=HEADERS)
    except Refusal as refusal:
        CONNECTIONS.labels("sse", RESULT_BY_STATUS.get(refusal.status, "rejected")).inc()
        raise
    return None


@bp.after_request
def cors(response: Response) -> Response:
    return add_cors_headers(response, g.get("cors_origin"))


bp.teardown_request(release_unless_taken)


@bp.get("/stream")
def stream() -> Response:
    settings: DeliverySettings = parts().delivery
    switchboard: Switchboard = parts().switchboard
    presence = parts().presence
    admission: Admission = g.admission
    g.admission_taken = True
    tab = Tab(
        admission.connection_id, admission.user_id, "sse", admission.cursor, settings.outbox_max
    )
    user = switchboard.attach(tab, admission.caught_up)
    tab.expire_at(stream_deadline(admission))
    watcher = watch_for_hangup(request.environ, lambda: tab.close(CLIENT_LEFT))
    sock = client_socket(request.environ)
    if sock is not None:
        tab.abort = lambda: cut(sock)
    CONNECTIONS.labels("sse", "accepted").inc()
    OPEN_CONNECTIONS.labels("sse").inc()
    log.info("connection opened user=%s transport=sse", admission.user_id)
    hello = sse_hello(admission.user_id) if wants_hello(request) else b""

    def events() -> Iterator[bytes]:
        # The loop of tab.batches, written out: a parked stream's greenlet saves
        # its C stack, and a generator less is a frame less in it.
        yield jittered_retry(settings.retry_ms) + encode_comment("connected") + hello
        while True:
            batch = tab.next_batch(settings.heartbeat_s)
            if tab.closed:
                break
            yield frame(batch) if batch else KEEPALIVE
            tab.wrote(batch, user.written)
        if tab.closed_reason == TOKEN_EXPIRED:
            yield EXPIRED_EVENT
        elif tab.closed_reason == REVOKED:
            yield revoked_event(tab.close_detail)
        elif tab.closed_reason == SERVICE_RESTART:
            # Spread the reconnects of every client of this worker over a few seconds.
            spread_ms = max(100, int(settings.reconnect_spread_s * 1000))
            yield encode_retry(random.randint(100, spread_ms)) + encode_comment(
                "service restart; reconnect after the retry delay"
            )

    def close() -> None:
        tab.finished = True
        if watcher is not None:
            watcher.stop()
        tab.close(CLIENT_LEFT)
        switchboard.detach(tab)
        release(admission, presence)
        OPEN_CONNECTIONS.labels("sse").dec()
        CLOSED.labels("sse", closed_label(tab.closed_reason)).inc()
        log.info(
            "connection closed user=%s transport=sse duration=%.1fs messages=%d reason=%s",
            tab.user_id,
            tab.age_s,
            tab.sent,
            tab.closed_reason,
        )

    return Response(
        StreamBody(events(), close),
        mimetype="text/event-stream",
        headers=HEADERS,
        direct_passthrough=True,
    )
