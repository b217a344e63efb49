"""Tickets: short-lived, single-use stand-ins for a token in a URL.

A page that holds a token asks `POST /ticket` for one and opens
`/stream?ticket=...`: the long-lived token stays out of URLs and access logs.
A ticket lives in Redis for PUSH_TICKET_TTL_S seconds and is taken with GETDEL,
so two requests racing with one ticket cannot both win. It carries the token's
exp and iat: the stream it opens ends with the token that bought it, and a
revocation refuses it as it would the token.
"""

from __future__ import annotations

import re
import secrets

import redis

from push.identity.tokens import Identity

#: 32 random bytes, URL-safe base64 without padding.
TICKET_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


def ticket_key(ticket: str) -> str:
    return f"push:ticket:{ticket}"


def issue_ticket(client: redis.Redis, identity: Identity, ttl_s: int) -> str:
    ticket = secrets.token_urlsafe(32)
    client.set(ticket_key(ticket), _encode(identity), ex=ttl_s)
    return ticket


def take_ticket(client: redis.Redis, ticket: str) -> Identity | None:
    """The identity the ticket was bought with, once; None when it is unknown, used or
    expired."""
    if not TICKET_PATTERN.fullmatch(ticket):
        return None
    value = client.getdel(ticket_key(ticket))
    return _decode(value.decode() if isinstance(value, bytes) else value) if value else None


def _encode(identity: Identity) -> str:
    """`<user id> <exp or -> <iat or ->` (a user id has no spaces)."""
    expires = "-" if identity.expires_at is None else repr(identity.expires_at)
    issued = "-" if identity.issued_at is None else repr(identity.issued_at)
    return f"{identity.user_id} {expires} {issued}"


def _decode(value: str) -> Identity:
    user_id, _, rest = value.partition(" ")
    expires, _, issued = rest.partition(" ")
    return Identity(
        user_id,
        expires_at=float(expires) if expires and expires != "-" else None,
        issued_at=float(issued) if issued and issued != "-" else None,
    )
