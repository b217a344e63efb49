"""POST /ticket: trade a token for a short, single-use ticket to put in a stream URL."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from push.errors import Refusal
from push.identity import identify
from push.origins import cors_post_endpoint
from push.redis_clients import REDIS_UNAVAILABLE
from push.store import Store
from push.tickets import issue_ticket

bp = Blueprint("auth", __name__)


cors_post_endpoint(bp, "/ticket")


@bp.post("/ticket")
def ticket() -> tuple[dict[str, object], int]:
    """`{"ticket": "...", "expires_in": 30}` for the user the token names."""
    identity = identify(request, tickets=False)
    store: Store = current_app.extensions["push.store"]
    ttl_s = current_app.config["PUSH_TICKET_TTL_S"]
    try:
        value = issue_ticket(store.redis, identity, ttl_s)
    except REDIS_UNAVAILABLE:
        raise Refusal(503, "redis_unavailable", "redis did not answer; try again") from None
    return {"ticket": value, "expires_in": ttl_s}, 200
