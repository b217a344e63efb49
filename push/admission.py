"""Admission: every check that may refuse a stream, run before anything is streamed.

flask-sock answers 101 before its view runs, so both transports call `admit`
from `before_request`: identity, cursor and Redis's answer are settled while a
plain HTTP error can still be sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Request, current_app

from push.errors import Refusal
from push.identity import identify
from push.keys import InvalidEventId, parse_event_id, user_keys
from push.store import Store

#: Where a user who has never been delivered anything starts: the whole history.
START_OF_HISTORY = "0-0"


class RedisUnavailable(Exception):
    """Redis did not answer while a stream was being admitted."""


@dataclass(frozen=True, slots=True)
class Admission:
    user_id: str
    #: The last event id this client has; it receives everything after it.
    cursor: str


def requested_cursor(request: Request) -> str | None:
    """The client's resume point: `Last-Event-ID` (EventSource) or `last_event_id`."""
    cursor = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if not cursor:
        return None
    try:
        parse_event_id(cursor)
    except InvalidEventId as error:
        raise Refusal(400, "invalid_last_event_id", str(error)) from None
    return cursor


def admit(request: Request) -> Admission:
    """Admit a stream request or raise Refusal / RedisUnavailable."""
    config = current_app.config
    user_id = identify(request, config)
    cursor = requested_cursor(request)
    store: Store = current_app.extensions["push.store"]
    keys = user_keys(user_id, config["PUSH_MAILBOX_KEY"])
    try:
        mark = store.delivered_mark(keys)
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise RedisUnavailable(str(error)) from error
    return Admission(user_id=user_id, cursor=cursor or mark or START_OF_HISTORY)
