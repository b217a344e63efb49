"""GET /ws: the same stream as WebSocket text frames, `{"id": ..., "data": ...}`."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import gevent
from flask import Blueprint, current_app, g, request
from flask_sock import Sock
from gevent.lock import Semaphore
from simple_websocket import ConnectionClosed, Server
from wsproto.events import CloseConnection, TextMessage

from push.admission import RedisUnavailable, admit
from push.config import DeliverySettings
from push.connection import CLIENT_LEFT, Connection, Reset
from push.errors import Refusal
from push.hub import Hub
from push.store import Entry

bp = Blueprint("ws", __name__)
sock = Sock()
log = logging.getLogger(__name__)

#: Close codes: 1011 when the server failed, 4008 when the client read too slowly.
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TOO_SLOW = 4008


class SerialSocket:
    """The WebSocket's socket, with every write whole and one at a time.

    simple-websocket writes pings and pongs from its own greenlet with a plain
    `send`, which may write part of a large frame; our frames go out from the
    view's greenlet. Both go through `send` here: under one lock, with sendall."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.lock = Semaphore()

    def send(self, data: bytes) -> int:
        with self.lock:
            self.raw.sendall(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def encode_frame(item: Entry | Reset) -> str:
    if isinstance(item, Reset):
        return json.dumps({"reset": True, "id": item.id})
    return json.dumps({"id": item.id, "data": item.data}, ensure_ascii=False)


def send_batch(ws: Server, batch: list[Entry | Reset]) -> None:
    """All frames of a batch in one socket write."""
    serial: SerialSocket = ws.sock
    with serial.lock:
        if not ws.connected:
            raise ConnectionClosed(ws.close_reason, ws.close_message)
        data = b"".join(ws.ws.send(TextMessage(data=encode_frame(item))) for item in batch)
        serial.raw.sendall(data)


def close(ws: Server, code: int, reason: str) -> None:
    serial: SerialSocket = ws.sock
    with serial.lock:
        if not ws.connected:
            return
        ws.connected = False
        with contextlib.suppress(OSError):
            serial.raw.sendall(ws.ws.send(CloseConnection(code, reason)))


def read_client(ws: Server, connection: Connection) -> None:
    """Read what the client sends until it closes; nothing is expected from it yet."""
    try:
        while True:
            ws.receive()
    except ConnectionClosed:
        pass
    connection.close(CLIENT_LEFT)


@bp.before_request
def admit_websocket() -> None:
    try:
        g.admission = admit(request)
    except RedisUnavailable:
        raise Refusal(
            503, "redis_unavailable", "redis did not answer; try again", {"Retry-After": "2"}
        ) from None


@sock.route("/ws", bp=bp)
def websocket(ws: Server) -> None:
    ws.sock = SerialSocket(ws.sock)
    try:
        serve(ws)
    except ConnectionClosed:
        pass
    except Exception:
        # The 101 is sent: an HTTP 500 must not be written into the upgraded socket.
        log.exception("websocket failed")
        close(ws, CLOSE_INTERNAL_ERROR, "internal error")


def serve(ws: Server) -> None:
    settings: DeliverySettings = current_app.extensions["push.settings"]
    hub: Hub = current_app.extensions["push.hub"]
    admission = g.admission
    connection = Connection(admission.user_id, "ws", admission.cursor, settings.outbox_max)
    channel = hub.attach(connection)
    reader = gevent.spawn(read_client, ws, connection)
    log.info("connection opened user=%s transport=ws", admission.user_id)
    try:
        for batch in connection.batches(settings.heartbeat_s, channel.written):
            if batch:
                send_batch(ws, batch)
        if connection.closed_reason != CLIENT_LEFT:
            close(ws, CLOSE_TOO_SLOW, connection.closed_reason or "closed")
    finally:
        connection.close(CLIENT_LEFT)
        reader.kill(block=True)
        hub.detach(connection)
        log.info(
            "connection closed user=%s transport=ws messages=%d reason=%s",
            connection.user_id,
            connection.sent,
            connection.closed_reason,
        )
