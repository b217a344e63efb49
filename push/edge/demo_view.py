"""The demo page and its send box; both exist only in demo mode (PUSH_DEMO=1).

Demo mode is for a developer's machine: streams by a bare ?user_id=, an open send box,
any origin allowed. An app built with it says so in a warning; gunicorn refuses it on an
address other hosts can reach (gunicorn.conf.py), and the settings refuse it beside a
JWT secret, unless PUSH_DEMO_FORCE=1.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, render_template, request

from push.edge.parts import parts
from push.identity.credentials import checked_user_id
from push.model.errors import Refusal
from push.model.keys import user_keys
from push.model.settings import Settings
from push.storage.store import Store

bp = Blueprint("demo", __name__)
log = logging.getLogger("push.demo")


def warn_when_on(settings: Settings) -> None:
    """Every app built in demo mode says so, whatever server runs it."""
    if not settings.demo:
        return
    log.warning(
        "demo mode is on (PUSH_DEMO=1%s): anyone who can reach this service can read any "
        "user's stream by ?user_id= and send to any user with /demo/send; never in production",
        ", forced by PUSH_DEMO_FORCE=1" if settings.demo_force else "",
    )


@bp.before_request
def demo_only() -> None:
    if not parts().settings.demo:
        abort(404)


@bp.get("/")
def index() -> str:
    return render_template("index.html")


@bp.post("/demo/send")
def send() -> tuple[dict[str, object], int]:
    """LPUSH a message to any user's mailbox, exactly as a producer would."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_json", 'send {"user_id": "42", "data": "hello"}')
    user_id = checked_user_id(body.get("user_id"))
    data = body.get("data")
    if not isinstance(data, str):
        raise Refusal(422, "invalid_data", "data must be a string")
    settings = parts().settings
    if len(data.encode()) > settings.max_message_bytes:
        raise Refusal(413, "too_large", "data is larger than PUSH_MAX_MESSAGE_BYTES")
    store: Store = parts().store
    waiting = store.push(user_keys(user_id, settings.mailbox_key), data)
    return {"queued": 1, "waiting": waiting}, 202
