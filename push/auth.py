"""POST /ticket: trade a token for a short, single-use ticket to put in a stream URL."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, current_app, g, request

from push.errors import Refusal
from push.identity import identify
from push.origins import add_cors_headers, cross_origin
from push.store import Store
from push.tickets import issue_ticket

bp = Blueprint("auth", __name__)


@bp.before_request
def check_origin() -> None:
    g.cors_origin = cross_origin(request, current_app.config["PUSH_ALLOWED_ORIGINS"])


@bp.after_request
def cors(response: Response) -> Response:
    if request.method == "OPTIONS" and g.get("cors_origin"):
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
    return add_cors_headers(response, g.get("cors_origin"))


@bp.route("/ticket", methods=["OPTIONS"])
def preflight() -> Response:
    return Response(status=204)


@bp.post("/ticket")
def ticket() -> tuple[dict[str, object], int]:
    """`{"ticket": "...", "expires_in": 30}` for the user the token names."""
    user_id = identify(request, tickets=False)
    store: Store = current_app.extensions["push.store"]
    ttl_s = current_app.config["PUSH_TICKET_TTL_S"]
    try:
        value = issue_ticket(store.redis, user_id, ttl_s)
    except (redis.ConnectionError, redis.TimeoutError):
        raise Refusal(503, "redis_unavailable", "redis did not answer; try again") from None
    return {"ticket": value, "expires_in": ttl_s}, 200
