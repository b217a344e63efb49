"""GET /ws: the same stream as WebSocket text frames, `{"id": ..., "data": ...}`."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from flask_sock import Sock
from gevent.lock import Semaphore
from simple_websocket import ConnectionClosed, Server
from wsproto.events import CloseConnection, Ping, TextMessage
from wsproto.frame_protocol import FrameProtocol

from push.delivery.switchboard import Switchboard
from push.delivery.tab import (
    CLIENT_LEFT,
    OUTBOX_FULL,
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
from push.edge.hangup import cut
from push.edge.hello import wants_hello, ws_hello
from push.edge.origins import add_cors_headers
from push.edge.parts import parts
from push.edge.ws_reader import forget_handshake
from push.identity.tokens import TokenRejected, TokenSettings, verify_token
from push.metrics import (
    ACKS_IGNORED,
    CLOSED,
    CONNECTIONS,
    OPEN_CONNECTIONS,
    RESULT_BY_STATUS,
    closed_label,
)
from push.model.entries import Entry
from push.model.errors import Refusal
from push.model.keys import InvalidEventId, parse_event_id
from push.model.settings import DeliverySettings
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.store import Store

bp = Blueprint("ws", __name__)
sock = Sock()
log = logging.getLogger(__name__)

#: Close codes. 1008: the client did not answer a ping in time; 1011: the server failed;
#: 1012: the service restarts (come back). The 4xxx codes echo the HTTP status of the same
#: complaint: 4400 a frame we do not understand, 4401 the token expired or a renewal's
#: token failed a check (the reason names it), 4403 the user was disconnected or a
#: renewal named another user, 4408 a client that read too slowly (it resumes by id),
#: 4413 a frame too large, 4415 a binary frame.
CLOSE_PING_TIMEOUT = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_BAD_FRAME = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408
CLOSE_TOO_LARGE = 4413
CLOSE_BINARY = 4415
#: Bytes a client frame may have; the only frame clients send is a short ack.
MAX_CLIENT_FRAME_BYTES = 4096
#: Why the writer stops when the client sent a frame it must not.
BAD_FRAME = "bad client frame"
_IGNORED_NOT_DELIVERED = ACKS_IGNORED.labels("not_delivered")
_IGNORED_NOT_NEWER = ACKS_IGNORED.labels("not_newer")


class SerialSocket:
    """The WebSocket's socket, with every write whole and one at a time.

    simple-websocket writes pings and pongs from its own greenlet with a plain
    `send`, which may write part of a large frame; our frames go out from the
    view's greenlet. Both go through `send` here: under one lock, with sendall."""

    __slots__ = ("lock", "raw")

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


#: Frames server to client: a server's frames are not masked and no extension is
#: negotiated, so an entry's frame is the same bytes on every socket.
_FRAMING = FrameProtocol(client=False, extensions=[])


@once_per_entry
def entry_frame(entry: Entry) -> bytes:
    return _FRAMING.send_data(encode_frame(entry))


def send_batch(ws: Server, batch: list[Entry | Reset]) -> None:
    """All frames of a batch in one socket write."""
    serial: SerialSocket = ws.sock
    with serial.lock:
        if not ws.connected:
            raise ConnectionClosed(ws.close_reason, ws.close_message)
        data = b"".join(
            entry_frame(item)
            if isinstance(item, Entry)
            else ws.ws.send(TextMessage(data=encode_frame(item)))
            for item in batch
        )
        serial.raw.sendall(data)


def send_text(ws: Server, text: str) -> None:
    """One text frame, whole, under the socket's lock."""
    serial: SerialSocket = ws.sock
    with serial.lock:
        if not ws.connected:
            raise ConnectionClosed(ws.close_reason, ws.close_message)
        serial.raw.sendall(ws.ws.send(TextMessage(data=text)))


def _close_reason(reason: str, detail: str) -> str:
    """A close frame's reason holds at most 123 bytes."""
    text = f"{reason}: {detail}" if detail else reason
    return text.encode()[:123].decode(errors="ignore")


def close(ws: Server, code: int, reason: str) -> None:
    serial: SerialSocket = ws.sock
    with serial.lock:
        if not ws.connected:
            return
        ws.connected = False
        with contextlib.suppress(OSError):
            serial.raw.sendall(ws.ws.send(CloseConnection(code, reason)))


@dataclass(frozen=True, slots=True)
class Ack:
    """`{"ack": "<event id>"}`: the client showed that event (`key`: the id, parsed)."""

    key: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Renewal:
    """`{"token": "<jwt>"}`: a fresh token for this tab (the same user)."""

    token: str


def check_client_frame(message: str | bytes) -> Ack | Renewal | tuple[int, str]:
    """What a client frame says, or the close code and reason it earns.

    Two shapes are agreed: `{"ack": "<event id>"}` and `{"token": "<jwt>"}`."""
    if isinstance(message, bytes):
        return CLOSE_BINARY, "binary frames are not accepted"
    if len(message.encode()) > MAX_CLIENT_FRAME_BYTES:
        return CLOSE_TOO_LARGE, f"client frames are at most {MAX_CLIENT_FRAME_BYTES} bytes"
    try:
        frame = json.loads(message)
    except (ValueError, RecursionError):
        return CLOSE_BAD_FRAME, "client frames are JSON objects"
    shape = 'client frames are {"ack": "<event id>"} or {"token": "<jwt>"}'
    if not isinstance(frame, dict) or len(frame) != 1:
        return CLOSE_BAD_FRAME, shape
    if isinstance(frame.get("token"), str):
        return Renewal(frame["token"])
    if not isinstance(frame.get("ack"), str):
        return CLOSE_BAD_FRAME, shape
    try:
        return Ack(parse_event_id(frame["ack"]))
    except InvalidEventId as error:
        return CLOSE_BAD_FRAME, _close_reason("ack names an event id", str(error))


#: No entry yet: below every event id.
NOTHING = (-1, -1)


class ClientFrames:
    """Handles what the client sent, in simple-websocket's reader: acks are passed on, a
    renewal moves the tab's deadline, a bad frame or token is refused (the writer
    closes with `refusal`), a closed tab ends the writer.

    An ack is passed on only if it names an entry handed to this tab's writer and
    is newer than the tab's last ack; others are counted and dropped, not refused:
    a client may ack again what it showed before a reconnect, and a dropped ack costs no
    Redis call. What the client sends never raises out of here: a failure closes 1011."""

    __slots__ = ("acked", "handed", "on_ack", "on_renewal", "refusal", "tab", "ws")

    def __init__(
        self,
        ws: Server,
        tab: Tab,
        on_ack: Callable[[tuple[int, int]], None],
        on_renewal: Callable[[str], tuple[int, str] | None],
    ) -> None:
        self.ws = ws
        self.tab = tab
        self.on_ack = on_ack
        self.on_renewal = on_renewal
        self.refusal: tuple[int, str] | None = None
        #: The newest entry handed to the writer (written, or being written).
        self.handed = NOTHING
        #: The newest ack passed on.
        self.acked = NOTHING

    def handing(self, batch: list[Entry | Reset]) -> None:
        """The writer is about to write `batch`: its entries may be acked from now on (a
        client may ack the first frames of a large write before the write returns)."""
        for item in reversed(batch):
            if isinstance(item, Entry):
                self.handed = max(self.handed, item.key)
                return

    def __call__(self) -> None:
        try:
            self._handle()
        except Exception:
            log.exception("client frame handling failed user=%s", self.tab.user_id)
            self.refusal = (CLOSE_INTERNAL_ERROR, "internal error")
            self.tab.close(BAD_FRAME)

    def _handle(self) -> None:
        while self.ws.input_buffer and self.refusal is None:
            checked = check_client_frame(self.ws.input_buffer.pop(0))
            if isinstance(checked, Ack):
                self._ack(checked.key)
                continue
            if isinstance(checked, Renewal):
                checked = self.on_renewal(checked.token)
                if checked is None:
                    continue
            self.refusal = checked
            self.tab.close(BAD_FRAME)
            return
        if not self.ws.connected:
            self.tab.close(CLIENT_LEFT)

    def _ack(self, key: tuple[int, int]) -> None:
        if key > self.handed:
            _IGNORED_NOT_DELIVERED.inc()
        elif key <= self.acked:
            _IGNORED_NOT_NEWER.inc()
        else:
            self.acked = key
            self.on_ack(key)


def renewal_check(
    tab: Tab,
    tokens: TokenSettings | None,
    revoked_since: Callable[[], float | None],
    leeway_s: int,
) -> Callable[[str], tuple[int, str] | None]:
    """What a `{"token"}` frame does: a valid token of the same user that was issued
    after any revocation moves the deadline to its exp (None: nothing to refuse); else
    the close code and reason."""

    def renew(token: str) -> tuple[int, str] | None:
        if tokens is None:
            return CLOSE_UNAUTHORIZED, "tokens_not_configured"
        try:
            identity = verify_token(token, tokens)
        except TokenRejected as rejected:
            return CLOSE_UNAUTHORIZED, rejected.code
        if identity.user_id != tab.user_id:
            return CLOSE_FORBIDDEN, "the token names another user"
        try:
            revoked = revoked_since()
        except REDIS_UNAVAILABLE:
            revoked = None  # the revocation's own wake closes the tab anyway
        if revoked is not None and (identity.issued_at or 0) < revoked:
            return CLOSE_UNAUTHORIZED, "token_revoked"
        assert identity.expires_at is not None  # verify_token requires exp
        tab.expire_at(identity.expires_at + leeway_s)
        return None

    return renew


def ping(ws: Server) -> bool:
    """Ping the client; False if it has not answered the previous ping (it is gone)."""
    if not ws.pong_received:
        return False
    ws.pong_received = False
    serial: SerialSocket = ws.sock
    with serial.lock:
        if ws.connected:
            serial.raw.sendall(ws.ws.send(Ping()))
    return True


@bp.before_request
def admit_websocket() -> None:
    # No permessage-deflate: its zlib state would stay with each socket (about 300 KB
    # once a message has gone out), for messages of a few hundred bytes.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    try:
        admit(request)
    except Unavailable as why:
        CONNECTIONS.labels("ws", "unavailable").inc()
        raise Refusal(503, "unavailable", f"{why}; try again", {"Retry-After": "2"}) from None
    except Refusal as refusal:
        CONNECTIONS.labels("ws", RESULT_BY_STATUS.get(refusal.status, "rejected")).inc()
        raise


bp.teardown_request(release_unless_taken)


@bp.after_request
def cors(response: Response) -> Response:
    """A refused handshake's status, readable by an allowed page's fetch (push.js asks the
    same URL over fetch to learn why an upgrade failed: the browser hides it)."""
    return add_cors_headers(response, g.get("cors_origin"))


@bp.after_request
def forget_websocket_state(response: Response) -> Response:
    """flask-sock answers each WebSocket with an instance of a class it makes per request,
    whose method keeps the Server (socket, buffers, protocol state) in its closure. A
    class is always in a reference cycle, so all of that would wait for the next full
    garbage collection (rare here: push/runtime.py). The reader is stopped by now (the
    view's end): keep only what that method reads."""
    ws = g.pop("websocket", None)
    if ws is not None:
        ws.thread.stop()
        mode = ws.mode
        ws.__dict__.clear()
        ws.mode = mode
    return response


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


@sock.route("/ws", bp=bp)
def websocket(ws: Server) -> None:
    g.websocket = ws
    forget_handshake(ws)
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
    settings: DeliverySettings = parts().delivery
    switchboard: Switchboard = parts().switchboard
    admission: Admission = g.admission
    g.admission_taken = True
    tab = Tab(
        admission.connection_id, admission.user_id, "ws", admission.cursor, settings.outbox_max
    )
    user = switchboard.attach(tab, admission.caught_up)
    tab.abort = lambda: cut(ws.sock.raw)
    tab.expire_at(stream_deadline(admission))
    store: Store = parts().store
    renew = renewal_check(
        tab,
        parts().tokens,
        lambda: store.revoked_since(admission.keys),
        current_app.config["PUSH_JWT_LEEWAY_S"],
    )
    frames = ClientFrames(ws, tab, user.acknowledged, renew)
    ws.event.on_set = frames
    frames()  # what arrived before
    CONNECTIONS.labels("ws", "accepted").inc()
    OPEN_CONNECTIONS.labels("ws").inc()
    log.info("connection opened user=%s transport=ws", admission.user_id)
    try:
        if wants_hello(request):
            send_text(ws, ws_hello(admission.user_id))
        for batch in tab.batches(current_app.config["PUSH_WS_PING_S"], user.written):
            if batch:
                frames.handing(batch)
                send_batch(ws, batch)
            elif not ping(ws):
                close(ws, CLOSE_PING_TIMEOUT, "ping timeout")
                tab.close(CLIENT_LEFT)
        if frames.refusal is not None:
            close(ws, *frames.refusal)
        elif tab.closed_reason == SERVICE_RESTART:
            close(ws, CLOSE_SERVICE_RESTART, SERVICE_RESTART)
        elif tab.closed_reason == TOKEN_EXPIRED:
            close(ws, CLOSE_UNAUTHORIZED, TOKEN_EXPIRED)
        elif tab.closed_reason == REVOKED:
            close(ws, CLOSE_FORBIDDEN, _close_reason(REVOKED, tab.close_detail))
        elif tab.closed_reason == OUTBOX_FULL:
            close(ws, CLOSE_TOO_SLOW, OUTBOX_FULL)
    finally:
        tab.finished = True
        tab.close(CLIENT_LEFT)
        ws.event.on_set = None
        ws.thread.stop()  # before the server closes the socket
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
