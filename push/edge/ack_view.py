"""POST /ack: an SSE client says what it showed (WebSocket clients send `{"ack": id}`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Blueprint, current_app, request

from push.edge.origins import cors_post_endpoint
from push.edge.parts import parts
from push.identity.identify import identify
from push.metrics import ACKS_IGNORED
from push.model.entries import Mark, Receipts
from push.model.errors import Refusal
from push.model.keys import InvalidEventId, event_id_text, parse_event_id, user_keys
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.store import Store

bp = Blueprint("receipts", __name__)


cors_post_endpoint(bp, "/ack")


@bp.post("/ack")
def ack() -> tuple[dict[str, object], int]:
    """`{"id": "<event id>"}`, authenticated like the stream (token, cookie; user_id in demo).

    One request, one script call (no more than the request's own cost): the script records
    the id only if it is newer than the last ack and not past what the user was given (the
    delivered mark or the history's newest entry), so a made-up id cannot hold the user's
    receipts back. An id it does not record answers `"acknowledged": false`."""
    user_id = identify(request, tickets=False).user_id
    key = ack_key(request.get_data())
    store: Store = parts().store
    keys = user_keys(user_id, current_app.config["PUSH_MAILBOX_KEY"])
    try:
        moved = store.acknowledge(
            keys, event_id_text(key), current_app.config["PUSH_HISTORY_TTL_S"]
        )
    except REDIS_UNAVAILABLE:
        raise Refusal(503, "unavailable", "redis did not answer; try again") from None
    if moved == NOT_GIVEN:
        ACKS_IGNORED.labels("not_delivered").inc()
    elif not moved:
        ACKS_IGNORED.labels("not_newer").inc()
    return {"acknowledged": moved == 1}, 200


#: lua/acknowledge.lua's answer for an id past everything the user was given.
NOT_GIVEN = -1


def ack_key(body: bytes) -> tuple[int, int]:
    """The event id a POST /ack body names, parsed; Refusal(400, "invalid_ack") for any
    body that is not `{"id": "<event id>"}` (JSON of any depth or shape, any bytes)."""
    shape = 'send {"id": "<event id>"}'
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        raise Refusal(400, "invalid_ack", shape) from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("id"), str):
        raise Refusal(400, "invalid_ack", shape)
    try:
        return parse_event_id(parsed["id"])
    except InvalidEventId as error:
        raise Refusal(400, "invalid_ack", str(error)) from None


def receipts_json(receipts: Receipts) -> dict[str, object]:
    def mark(value: Mark | None) -> dict[str, str] | None:
        if value is None:
            return None
        at = datetime.fromtimestamp(value.at_ms / 1000, UTC).isoformat()
        return {"id": value.id, "at": at}

    return {
        "waiting": receipts.waiting,
        "delivered": mark(receipts.delivered),
        "acknowledged": mark(receipts.acknowledged),
        "unacknowledged": receipts.unacknowledged,
    }
