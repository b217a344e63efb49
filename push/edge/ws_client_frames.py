"""What a WebSocket client sends: acks and token renewals, checked and handed on.

Two shapes are agreed: `{"ack": "<event id>"}` and `{"token": "<jwt>"}`. Anything else
earns a close code (push/edge/ws_close.py) and the writer closes the connection."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from push.delivery.tab import CLIENT_LEFT, Reset, Tab
from push.edge.websocket import ClientSocket
from push.edge.ws_close import (
    CLOSE_BAD_FRAME,
    CLOSE_BINARY,
    CLOSE_FORBIDDEN,
    CLOSE_INTERNAL_ERROR,
    CLOSE_TOO_LARGE,
    CLOSE_UNAUTHORIZED,
    close_reason,
)
from push.identity.tokens import TokenRejected, TokenSettings, verify_token
from push.metrics import ACKS_IGNORED
from push.model.entries import Entry
from push.model.keys import InvalidEventId, parse_event_id
from push.storage.clients import REDIS_UNAVAILABLE

log = logging.getLogger(__name__)

#: Bytes a client frame may have; the only frame clients send is a short ack.
MAX_CLIENT_FRAME_BYTES = 4096
#: Why the writer stops when the client sent a frame it must not.
BAD_FRAME = "bad client frame"
#: No entry yet: below every event id.
NOTHING = (-1, -1)
_IGNORED_NOT_DELIVERED = ACKS_IGNORED.labels("not_delivered")
_IGNORED_NOT_NEWER = ACKS_IGNORED.labels("not_newer")


@dataclass(frozen=True, slots=True)
class Ack:
    """`{"ack": "<event id>"}`: the client showed that event (`key`: the id, parsed)."""

    key: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Renewal:
    """`{"token": "<jwt>"}`: a fresh token for this tab (the same user)."""

    token: str


def check_client_frame(message: str | bytes) -> Ack | Renewal | tuple[int, str]:
    """What a client frame says, or the close code and reason it earns."""
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
        return CLOSE_BAD_FRAME, close_reason("ack names an event id", str(error))


class ClientFrames:
    """Handles what the client sent, in the socket's reader: acks are passed on, a
    renewal moves the tab's deadline, a bad frame or token is refused (the writer
    closes with `refusal`), a closed tab ends the writer.

    An ack is passed on only if it names an entry handed to this tab's writer and
    is newer than the tab's last ack; others are counted and dropped, not refused:
    a client may ack again what it showed before a reconnect, and a dropped ack costs no
    Redis call. What the client sends never raises out of here: a failure closes 1011."""

    __slots__ = ("acked", "handed", "on_ack", "on_renewal", "refusal", "tab", "ws")

    def __init__(
        self,
        ws: ClientSocket,
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
        received = self.ws.received
        while received and self.refusal is None:
            checked = check_client_frame(received.pop(0))
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
