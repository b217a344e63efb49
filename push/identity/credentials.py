"""The checks of a credential, each on the values it is given: a user id, a push token, a
ticket, and the 401 that names the check that failed.

Where a request's credential is found, and which check it goes to, is the edge's part
(push/edge/who.py): nothing here reads a request or an app."""

from __future__ import annotations

import redis

from push.identity.tickets import take_ticket
from push.identity.tokens import Identity, TokenRejected, TokenSettings, verify_token
from push.model.errors import Refusal
from push.model.keys import InvalidUserId, validate_user_id


def checked_user_id(raw: object) -> str:
    """A user id fit for key names, or a 400 refusal that says what a user id is."""
    try:
        return validate_user_id(raw)
    except InvalidUserId as error:
        raise Refusal(400, "invalid_user_id", str(error)) from None


def unauthorized(error: str, detail: str) -> Refusal:
    return Refusal(401, error, detail, {"WWW-Authenticate": f'Bearer error="{error}"'})


def missing_credential(demo: bool) -> Refusal:
    """The 401 for a request that sent nothing to identify it by."""
    detail = "send a token (Authorization: Bearer, cookie, or ?token=) or a ?ticket="
    if demo:
        detail += ", or ?user_id= in demo mode"
    return unauthorized("missing_token", detail)


def checked_token(token: str, settings: TokenSettings | None) -> Identity:
    """Who a push token names, or the 401 naming the check it failed (`settings` None:
    PUSH_JWT_SECRET is not set, so no token is accepted)."""
    if settings is None:
        raise unauthorized("tokens_not_configured", "PUSH_JWT_SECRET is not set")
    try:
        return verify_token(token, settings)
    except TokenRejected as rejected:
        raise unauthorized(rejected.code, rejected.detail) from None


def checked_ticket(client: redis.Redis, ticket: str, *, accepted: bool = True) -> Identity:
    """Who a ticket was bought for, taking it (single use), or a 401: the ticket is unknown,
    used or expired, or tickets are not `accepted` here (only a stream takes one).
    Reaches Redis: its errors propagate to the caller."""
    if not accepted:
        raise unauthorized("ticket_not_accepted", "a ticket opens a stream; send the token")
    identity = take_ticket(client, ticket)
    if identity is None:
        raise unauthorized("invalid_ticket", "the ticket is unknown, used or expired")
    return identity
