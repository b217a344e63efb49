"""POST /ticket: trade a token for a short, single-use ticket to put in a stream URL."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request

from push.edge.origins import cors_post_endpoint
from push.edge.parts import parts
from push.identity.identify import ask_site_again, identify
from push.identity.tickets import issue_ticket
from push.model.errors import Refusal
from push.model.keys import user_keys
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.store import Store

bp = Blueprint("auth", __name__)


cors_post_endpoint(bp, "/ticket")


@bp.post("/ticket")
def ticket() -> tuple[dict[str, object], int]:
    """`{"ticket": "...", "expires_in": 30}` for the user the token names."""
    identity = identify(request, tickets=False)
    store: Store = parts().store
    ttl_s = current_app.config["PUSH_TICKET_TTL_S"]
    try:
        if g.get("site_headers") is not None:
            # A cached answer from before a disconnect would buy a ticket the stream then
            # refuses: ask the site again, as a stream's admission does.
            keys = user_keys(identity.user_id, current_app.config["PUSH_MAILBOX_KEY"])
            revoked_at = store.revoked_since(keys)
            if revoked_at is not None and int((identity.issued_at or 0) * 1000) < revoked_at * 1000:
                identity = ask_site_again(request, revoked_at) or identity
        value = issue_ticket(store.redis, identity, ttl_s)
    except REDIS_UNAVAILABLE:
        raise Refusal(503, "redis_unavailable", "redis did not answer; try again") from None
    return {"ticket": value, "expires_in": ttl_s}, 200
