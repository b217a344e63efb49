"""Admission: every check that may refuse a stream, run before anything is streamed.

flask-sock answers 101 before its view runs, so both transports admit from
`before_request`, while a plain HTTP error can still be sent: Origin (403),
identity (401), cursor (400), the per-user connection limit (429), and Redis's
answer. An admitted stream holds a presence lease until `release`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Request, g

from push.edge.origins import cross_origin
from push.edge.parts import parts
from push.edge.who import ask_site_again, identify
from push.identity.credentials import unauthorized
from push.metrics import REDIS_ERRORS
from push.model.errors import HookUnavailable, Refusal
from push.model.keys import InvalidEventId, UserKeys, parse_event_id, user_keys
from push.rules.cursors import start_cursor, starts_caught_up
from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.presence import Presence, new_connection_id

log = logging.getLogger(__name__)

#: Seconds a client over the connection limit is told to wait.
LIMIT_RETRY_AFTER_S = 10


class Unavailable(Exception):
    """This worker cannot take a stream now (Redis did not answer, or it is shutting down);
    the client should come back shortly."""


@dataclass(frozen=True, slots=True)
class Admission:
    user_id: str
    keys: UserKeys
    #: The last event id this client has; it receives everything after it.
    cursor: str
    #: This connection's presence lease.
    connection_id: str
    #: Whether the history held nothing after `cursor` when the stream was admitted.
    caught_up: bool = False
    #: When the stream must end: its credential's exp (seconds since the epoch), None: never.
    expires_at: float | None = None
    #: When its credential was issued (seconds; None: not a token).
    issued_at: float | None = None


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
    """Admit a stream request, or raise Refusal / Unavailable.

    Sets `g.cors_origin` (for the response's CORS headers) and `g.admission`."""
    settings = parts().settings
    if parts().switchboard.draining:
        raise Unavailable("this worker is shutting down")
    g.cors_origin = cross_origin(request, settings.allowed_origins, settings.token_cookie)
    cursor = requested_cursor(request)
    presence: Presence = parts().presence
    try:
        identity = identify(request)
        user_id = identity.user_id
        keys = user_keys(user_id, settings.mailbox_key)
        connection_id = new_connection_id()
        joined = presence.join(keys, connection_id, identity.issued_at)
        fresh = None if joined.revoked_at is None else ask_site_again(joined.revoked_at / 1000)
        if fresh is not None:
            # A cached answer from before a disconnect: the site was asked again.
            identity = fresh
            user_id = identity.user_id
            keys = user_keys(user_id, settings.mailbox_key)
            joined = presence.join(keys, connection_id, identity.issued_at)
        if joined.revoked_at is not None:
            raise unauthorized(
                "token_revoked", "the user was disconnected after this token was issued (iat)"
            )
        if not joined.joined:
            raise Refusal(
                429,
                "too_many_connections",
                f"this user has {joined.count} open connections, the most "
                "PUSH_MAX_CONNECTIONS_PER_USER allows",
                {"Retry-After": str(LIMIT_RETRY_AFTER_S)},
            )
    except REDIS_UNAVAILABLE as error:
        REDIS_ERRORS.labels("admission").inc()
        raise Unavailable("redis is unavailable") from error
    except HookUnavailable as error:
        raise Unavailable(str(error)) from error
    start = start_cursor(cursor, joined.mark)
    caught_up = starts_caught_up(joined.caught_up, start, joined.mark)
    g.admission = Admission(
        user_id,
        keys,
        start,
        connection_id,
        caught_up,
        expires_at=identity.expires_at,
        issued_at=identity.issued_at,
    )
    return g.admission


def stream_deadline(admission: Admission) -> float | None:
    """When an admitted stream ends (seconds since the epoch): its credential's exp plus the
    clock skew allowed (PUSH_JWT_LEEWAY_S); None: never."""
    if admission.expires_at is None:
        return None
    return admission.expires_at + parts().settings.jwt_leeway_s


def release(admission: Admission, presence: Presence) -> None:
    """Give back the presence lease (it expires by itself if Redis is away)."""
    try:
        presence.leave(admission.keys, admission.connection_id)
    except REDIS_UNAVAILABLE as error:
        log.warning("redis error releasing presence user=%s error=%s", admission.user_id, error)


def release_unless_taken(exc: BaseException | None = None) -> None:
    """teardown_request: release an admission whose view never took it over."""
    admission = g.pop("admission", None)
    if admission is not None and not g.get("admission_taken", False):
        release(admission, parts().presence)
