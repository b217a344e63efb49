"""Who is asking: the user id a stream belongs to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Request

from push.errors import Refusal
from push.keys import InvalidUserId, validate_user_id


def checked_user_id(raw: object) -> str:
    """A user id fit for key names, or a 400 refusal that says what a user id is."""
    try:
        return validate_user_id(raw)
    except InvalidUserId as error:
        raise Refusal(400, "invalid_user_id", str(error)) from None


def identify(request: Request, config: Mapping[str, Any]) -> str:
    """The user id of a stream request.

    Demo mode takes it from the `user_id` query parameter. Outside demo mode there
    is no way in yet but a signed token, which this service does not accept yet.
    """
    if not config["PUSH_DEMO"]:
        raise Refusal(
            401,
            "unauthorized",
            "only demo mode (PUSH_DEMO=1) accepts a user_id; no other identity is configured",
            {"WWW-Authenticate": "Bearer"},
        )
    raw = request.args.get("user_id")
    if raw is None:
        raise Refusal(400, "missing_user_id", "pass ?user_id=<id>")
    return checked_user_id(raw)
