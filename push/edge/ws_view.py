"""GET /ws: the same stream as WebSocket text frames, `{"id": ..., "data": ...}`.

The view and its loop: admission, the tab, the writes and pings, the close. What the
client sends is handled in push/edge/ws_client_frames.py, the close codes are in
push/edge/ws_close.py, and simple-websocket is reached only through push/edge/websocket.py."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, g, request

from push.delivery.switchboard import Switchboard
from push.delivery.tab import CLIENT_LEFT, Reset, Tab
from push.edge.admission import (
    Admission,
    Unavailable,
    admit,
    release,
    release_unless_taken,
    stream_deadline,
)
from push.edge.encoding import once_per_entry
from push.edge.errors import unavailable
from push.edge.hello import wants_hello, ws_hello
from push.edge.origins import add_cors_headers
from push.edge.parts import parts
from push.edge.websocket import (
    ClientSocket,
    WebSocketClosed,
    refuse_extensions,
    text_frame,
    websocket_route,
)
from push.edge.ws_client_frames import ClientFrames, renewal_check
from push.edge.ws_close import CLOSE_INTERNAL_ERROR, CLOSE_PING_TIMEOUT, close_for
from push.metrics import (
    CLOSED,
    CONNECTIONS,
    OPEN_CONNECTIONS,
    RESULT_BY_STATUS,
    closed_label,
)
from push.model.entries import Entry
from push.model.errors import Refusal
from push.model.settings import DeliverySettings
from push.storage.store import Store

bp = Blueprint("ws", __name__)
log = logging.getLogger(__name__)


def encode_frame(item: Entry | Reset) -> str:
    if isinstance(item, Reset):
        return json.dumps({"reset": True, "id": item.id})
    return json.dumps({"id": item.id, "data": item.data}, ensure_ascii=False)


@once_per_entry
def entry_frame(entry: Entry) -> bytes:
    """An entry's frame: the same bytes for every tab that gets the entry."""
    return text_frame(encode_frame(entry))


def send_batch(ws: ClientSocket, batch: list[Entry | Reset]) -> None:
    """All frames of a batch in one socket write."""
    ws.send_frames(
        [
            entry_frame(item) if isinstance(item, Entry) else text_frame(encode_frame(item))
            for item in batch
        ]
    )


@bp.before_request
def admit_websocket() -> None:
    refuse_extensions(request.environ)
    try:
        admit(request)
    except Unavailable as why:
        CONNECTIONS.labels("ws", "unavailable").inc()
        raise unavailable(str(why)) from None
    except Refusal as refusal:
        CONNECTIONS.labels("ws", RESULT_BY_STATUS.get(refusal.status, "rejected")).inc()
        raise


bp.teardown_request(release_unless_taken)


@bp.after_request
def cors(response: Response) -> Response:
    """A refused handshake's status, readable by an allowed page's fetch (push.js asks the
    same URL over fetch to learn why an upgrade failed: the browser hides it)."""
    return add_cors_headers(response, g.get("cors_origin"))


@bp.get("/ws")
def upgrade_required() -> None:
    """/ws without the upgrade, admitted all the same: what a page whose WebSocket handshake
    failed asks over fetch (browsers hide a failed upgrade's status). Everything but the
    upgrade passed, so something between the page and the service broke the upgrade. The
    admission is given back at teardown."""
    raise Refusal(
        426,
        "upgrade_required",
        "this request would be accepted as a WebSocket upgrade",
        {"Upgrade": "websocket"},
    )


@websocket_route(bp, "/ws")
def websocket(ws: ClientSocket) -> None:
    try:
        serve(ws)
    except WebSocketClosed:
        pass
    except Exception:
        # The 101 is sent: an HTTP 500 must not be written into the upgraded socket.
        log.exception("websocket failed")
        ws.close(CLOSE_INTERNAL_ERROR, "internal error")


def serve(ws: ClientSocket) -> None:
    settings: DeliverySettings = parts().delivery
    switchboard: Switchboard = parts().switchboard
    admission: Admission = g.admission
    g.admission_taken = True
    tab = Tab(
        admission.connection_id, admission.user_id, "ws", admission.cursor, settings.outbox_max
    )
    user = switchboard.attach(tab, admission.caught_up)
    tab.abort = ws.abort
    tab.expire_at(stream_deadline(admission))
    store: Store = parts().store
    renew = renewal_check(
        tab,
        parts().tokens,
        lambda: store.revoked_since(admission.keys),
        parts().settings.jwt_leeway_s,
    )
    frames = ClientFrames(ws, tab, user.acknowledged, renew)
    ws.on_frames(frames)
    frames()  # what arrived before
    CONNECTIONS.labels("ws", "accepted").inc()
    OPEN_CONNECTIONS.labels("ws").inc()
    log.info("connection opened user=%s transport=ws", admission.user_id)
    try:
        if wants_hello(request):
            ws.send_text(ws_hello(admission.user_id))
        for batch in tab.batches(parts().settings.ws_ping_s, user.written):
            if batch:
                frames.handing(batch)
                send_batch(ws, batch)
            elif not ws.ping():
                ws.close(CLOSE_PING_TIMEOUT, "ping timeout")
                tab.close(CLIENT_LEFT)
        closing = frames.refusal or close_for(tab)
        if closing is not None:
            ws.close(*closing)
    finally:
        tab.finished = True
        tab.close(CLIENT_LEFT)
        ws.on_frames(None)
        ws.stop_reading()  # before the server closes the socket
        switchboard.detach(tab)
        release(admission, parts().presence)
        OPEN_CONNECTIONS.labels("ws").dec()
        CLOSED.labels("ws", closed_label(tab.closed_reason)).inc()
        log.info(
            "connection closed user=%s transport=ws duration=%.1fs messages=%d reason=%s",
            tab.user_id,
            tab.age_s,
            tab.sent,
            tab.closed_reason,
        )
