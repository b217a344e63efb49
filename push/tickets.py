"""Tickets: short-lived, single-use stand-ins for a token in a URL.

A page that holds a token asks `POST /ticket` for one and opens
`/stream?ticket=...`: the long-lived token stays out of URLs and access logs.
A ticket lives in Redis for PUSH_TICKET_TTL_S seconds and is taken with GETDEL,
so two requests racing with one ticket cannot both win.
"""

from __future__ import annotations

import re
import secrets

import redis

#: 32 random bytes, URL-safe base64 without padding.
TICKET_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


def ticket_key(ticket: str) -> str:
    return f"push:ticket:{ticket}"


def issue_ticket(client: redis.Redis, user_id: str, ttl_s: int) -> str:
    ticket = secrets.token_urlsafe(32)
    client.set(ticket_key(ticket), user_id, ex=ttl_s)
    return ticket


def take_ticket(client: redis.Redis, ticket: str) -> str | None:
    """The ticket's user id, once; None when it is unknown, used or expired."""
    if not TICKET_PATTERN.fullmatch(ticket):
        return None
    user_id = client.getdel(ticket_key(ticket))
    return user_id.decode() if user_id is not None else None
