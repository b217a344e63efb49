"""POST /ack: an SSE client says what it showed (WebSocket clients send `{"ack": id}`)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, request

from push.errors import Refusal
from push.identity import identify
from push.keys import InvalidEventId, parse_event_id, user_keys
from push.origins import cors_post_endpoint
from push.redis_clients import REDIS_UNAVAILABLE
from push.store import Mark, Receipts, Store

bp = Blueprint("receipts", __name__)


cors_post_endpoint(bp, "/ack")


@bp.post("/ack")
def ack() -> tuple[dict[str, object], int]:
    """`{"id": "<event id>"}`, authenticated like the stream (token, cookie; user_id in demo)."""
    user_id = identify(request, tickets=False).user_id
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise Refusal(400, "invalid_ack", 'send {"id": "<event id>"}')
    try:
        parse_event_id(body["id"])
    except InvalidEventId as error:
        raise Refusal(400, "invalid_ack", str(error)) from None
    store: Store = current_app.extensions["push.store"]
    keys = user_keys(user_id, current_app.config["PUSH_MAILBOX_KEY"])
    try:
        moved = store.acknowledge(keys, body["id"], current_app.config["PUSH_HISTORY_TTL_S"])
    except REDIS_UNAVAILABLE:
        raise Refusal(503, "unavailable", "redis did not answer; try again") from None
    return {"acknowledged": moved}, 200


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
