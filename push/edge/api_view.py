"""The publish API under /api, for backends that would rather not speak Redis.

Off (404) unless PUSH_API_KEY is set; every call then needs
`Authorization: Bearer <key>` (several keys, comma-separated, for rotation).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from flask import Blueprint, Response, abort, current_app, g, jsonify, request

from push.edge.ack_view import receipts_json
from push.edge.openapi import MAX_USERS_PER_CALL, openapi_document
from push.edge.parts import parts
from push.identity.identify import checked_user_id
from push.model.errors import Refusal
from push.model.keys import user_keys
from push.publishing import PublishError, disconnect, publish_many
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.presence import Presence
from push.storage.store import Store

bp = Blueprint("api", __name__, url_prefix="/api")
log = logging.getLogger(__name__)

#: HTTP status of each PublishError code.
PUBLISH_ERROR_STATUS = {
    "invalid_user_id": 400,
    "not_utf8": 400,
    "not_serializable": 422,
    "too_large": 413,
    "idempotency_key_reused": 422,
    "idempotency_in_progress": 409,
    "invalid_reason": 422,
}


def _redis_unavailable() -> Refusal:
    return Refusal(
        503, "redis_unavailable", "redis did not answer; try again", {"Retry-After": "2"}
    )


@bp.before_request
def authenticate() -> None:
    keys: tuple[str, ...] = current_app.config["PUSH_API_KEY"]
    if not keys:
        abort(404)
    if request.endpoint == "api.openapi":
        return
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    matched = [
        key
        for key in keys
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), key.encode())
    ]
    if not matched:
        raise Refusal(
            401,
            "unauthorized",
            "send Authorization: Bearer <one of PUSH_API_KEY>",
            {"WWW-Authenticate": "Bearer"},
        )
    g.api_key_id = hashlib.sha256(matched[0].encode()).hexdigest()[:16]
    _limit_rate()


def _limit_rate() -> None:
    """At most PUSH_API_RATE calls per second per key (a fixed one-second window)."""
    rate = current_app.config["PUSH_API_RATE"]
    if not rate:
        return
    store: Store = parts().store
    window = f"push:rate:{g.api_key_id}:{int(time.time())}"
    try:
        with store.redis.pipeline(transaction=False) as pipe:
            pipe.incr(window)
            pipe.expire(window, 2)
            calls, _ = pipe.execute()
    except REDIS_UNAVAILABLE:
        raise _redis_unavailable() from None
    if calls > rate:
        raise Refusal(429, "rate_limited", f"more than {rate} calls a second", {"Retry-After": "1"})


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


def _publish_request() -> tuple[list[str], object]:
    """(user ids, data) from the body, or a refusal naming what is wrong with it. The body
    was read within its bounds (push/edge/bodies.py: 413 body_too_large, 408 body_timeout)."""
    if not request.is_json:
        raise Refusal(415, "unsupported_media_type", "send Content-Type: application/json")
    body = request.get_json(silent=True)
    if body is None and request.get_data() != b"null":
        raise Refusal(400, "invalid_json", "the body is not valid JSON")
    if not isinstance(body, dict) or "data" not in body:
        raise Refusal(422, "invalid_request", 'send {"user_id": "42", "data": ...}')
    extra = set(body) - {"user_id", "user_ids", "data"}
    if extra or ("user_id" in body) == ("user_ids" in body):
        raise Refusal(
            422, "invalid_request", "send data and exactly one of user_id and user_ids, no more"
        )
    if "user_id" in body:
        if not isinstance(body["user_id"], str):
            raise Refusal(422, "invalid_request", "user_id is a string")
        return [checked_user_id(body["user_id"])], body["data"]
    ids = body["user_ids"]
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_USERS_PER_CALL:
        raise Refusal(
            422, "invalid_request", f"user_ids is a list of 1 to {MAX_USERS_PER_CALL} user ids"
        )
    if not all(isinstance(user_id, str) for user_id in ids):
        raise Refusal(422, "invalid_request", "every user id is a string")
    return [checked_user_id(user_id) for user_id in ids], body["data"]


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 255 and key.isprintable()):
        raise Refusal(400, "invalid_idempotency_key", "an Idempotency-Key is 1-255 characters")
    return key


@bp.post("/publish")
def publish() -> tuple[dict[str, object], int]:
    user_ids, data = _publish_request()
    idempotency_key = _idempotency_key()
    store: Store = parts().store
    try:
        online = publish_many(
            store.redis,
            user_ids,
            data,
            idempotency_key=idempotency_key,
            mailbox_key=current_app.config["PUSH_MAILBOX_KEY"],
            max_bytes=current_app.config["PUSH_MAX_MESSAGE_BYTES"],
            mailbox_max=current_app.config["PUSH_MAILBOX_MAX"],
            mailbox_ttl_s=current_app.config["PUSH_MAILBOX_TTL_S"],
            # Each API key has idempotency keys of its own: named by its hash, never itself.
            idempotency_scope=g.api_key_id,
            idempotency_max_bytes=current_app.config["PUSH_IDEMPOTENCY_MAX_BYTES"],
        )
    except PublishError as error:
        headers = {"Retry-After": str(error.retry_after_s)} if error.retry_after_s else None
        raise Refusal(PUBLISH_ERROR_STATUS[error.code], error.code, error.detail, headers) from None
    except REDIS_UNAVAILABLE:
        raise _redis_unavailable() from None
    return {"queued": len(online), "online": online}, 202


@bp.get("/users/<user_id>/receipts")
def receipts(user_id: str) -> dict[str, object]:
    """How far the user's messages got: waiting, delivered, acknowledged, unacknowledged."""
    keys = user_keys(checked_user_id(user_id), current_app.config["PUSH_MAILBOX_KEY"])
    store: Store = parts().store
    try:
        return receipts_json(store.receipts(keys))
    except REDIS_UNAVAILABLE:
        raise _redis_unavailable() from None


@bp.get("/users/<user_id>/presence")
def presence(user_id: str) -> dict[str, object]:
    keys = user_keys(checked_user_id(user_id), current_app.config["PUSH_MAILBOX_KEY"])
    registry: Presence = parts().presence
    try:
        count = registry.count(keys)
    except REDIS_UNAVAILABLE:
        raise _redis_unavailable() from None
    return {
        "online": count.online,
        "connections": count.connections,
        "last_seen": count.last_seen.isoformat() if count.last_seen else None,
    }


@bp.post("/users/<user_id>/disconnect")
def disconnect_user(user_id: str) -> tuple[dict[str, object], int]:
    """Close every open connection of the user, everywhere, and refuse the tokens issued
    before now; optional body `{"reason": "..."}`, told to the user's clients."""
    checked = checked_user_id(user_id)
    reason = ""
    if request.get_data():
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or set(body) - {"reason"}:
            raise Refusal(422, "invalid_request", 'send no body, or {"reason": "..."}')
        reason = body.get("reason", "")
    store: Store = parts().store
    try:
        closed = disconnect(
            store.redis,
            checked,
            reason,
            mailbox_key=current_app.config["PUSH_MAILBOX_KEY"],
            ttl_s=current_app.config["PUSH_REVOCATION_TTL_S"],
        )
    except PublishError as error:
        raise Refusal(PUBLISH_ERROR_STATUS[error.code], error.code, error.detail) from None
    except REDIS_UNAVAILABLE:
        raise _redis_unavailable() from None
    log.info("user disconnected user=%s connections=%d", checked, closed)
    return {"disconnected": closed}, 200
