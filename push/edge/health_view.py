"""Operators' endpoints: /metrics, /healthz and /readyz."""

from __future__ import annotations

import hmac

import redis
from flask import Blueprint, Response, current_app, request

from push.edge.parts import parts
from push.metrics import exposition
from push.model.errors import Refusal
from push.storage.clients import REDIS_UNAVAILABLE

bp = Blueprint("health", __name__)

#: /readyz's budget for Redis's answer.
READY_TIMEOUT_S = 0.25


@bp.get("/metrics")
def metrics() -> Response:
    token = current_app.config["PUSH_METRICS_TOKEN"]
    if token:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise Refusal(
                401,
                "unauthorized",
                "send Authorization: Bearer <PUSH_METRICS_TOKEN>",
                {"WWW-Authenticate": "Bearer"},
            )
    body, content_type = exposition()
    return Response(body, content_type=content_type)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """200 while this process serves requests."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, str], int]:
    """200 when Redis answers within 250 ms and the worker is not shutting down."""
    if parts().switchboard.draining:
        return {"redis": "unknown", "status": "shutting down"}, 503
    client: redis.Redis = parts().ready_redis
    try:
        client.ping()
    except REDIS_UNAVAILABLE as error:
        return {"redis": f"unavailable: {error}", "status": "not ready"}, 503
    return {"redis": "ok", "status": "ready"}, 200
