"""Who is asking: the user id a request belongs to.

Credentials are looked for in this order: `Authorization: Bearer <token>`, the
token cookie (PUSH_TOKEN_COOKIE, for EventSource, which cannot set headers),
the `token` query parameter, then a `ticket` query parameter. With PUSH_AUTH_URL, a
request with none of these (or with an Authorization header that is not a push token)
is identified by the site from its own cookies (push/identity/site_hook.py). Demo mode also
accepts a bare `user_id` parameter when no credential is given.

This module reads the request and the app's parts; the checks themselves take values
(push/identity/credentials.py).
"""

from __future__ import annotations

import dataclasses

from flask import Request, g

from push.edge.parts import parts
from push.identity.credentials import (
    checked_ticket,
    checked_token,
    checked_user_id,
    missing_credential,
    unauthorized,
)
from push.identity.site_hook import AuthHook
from push.identity.tokens import Identity


def credential(request: Request, cookie: str) -> tuple[str, str] | None:
    """("token" | "ticket", value) from the first place that has one, or None."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthorized("malformed_authorization", "send Authorization: Bearer <token>")
        return "token", value.strip()
    if request.cookies.get(cookie):
        return "token", request.cookies[cookie]
    if "token" in request.args:
        return "token", request.args["token"]
    if "ticket" in request.args:
        return "ticket", request.args["ticket"]
    return None


def ask_site(hook: AuthHook, cookie: str, authorization: str) -> Identity:
    """The site's answer; the headers it was for are kept on `g` for `ask_site_again`."""
    g.site_headers = (cookie, authorization)
    return hook.identify(cookie, authorization)


def asked_site() -> bool:
    """Whether the site identified this request (not a token or a ticket)."""
    return g.get("site_headers") is not None


def ask_site_again(revoked_at: float) -> Identity | None:
    """For a request the site identified from a cached answer older than a revocation at
    `revoked_at` (seconds, Redis's clock): drop that answer and ask the site again. Its
    fresh answer decides, and counts as after the revocation whatever the service's clock
    says (it was asked after the revocation was read). None when the site did not identify
    this request (a token or ticket: the revocation refuses it)."""
    headers = g.pop("site_headers", None)
    hook = parts().site_hook
    if headers is None or hook is None:
        return None
    hook.forget(*headers)
    fresh = ask_site(hook, *headers)
    issued_at = max(fresh.issued_at or 0.0, revoked_at + 0.001)
    return dataclasses.replace(fresh, issued_at=issued_at)


def identify(request: Request, *, tickets: bool = True) -> Identity:
    """Who a request is for and until when, or a 401 refusal naming the check that failed.

    May reach Redis (to take a ticket): redis errors propagate to the caller. May ask the
    site's hook: HookUnavailable propagates."""
    hook = parts().site_hook
    tokens = parts().tokens
    settings = parts().settings
    header = request.headers.get("Authorization")
    if hook is not None and header is not None:
        bearer = header.partition(" ")[0].lower() == "bearer"
        if not (bearer and tokens is not None):
            return ask_site(hook, request.headers.get("Cookie", ""), header)
    found = credential(request, settings.token_cookie)
    if found is None and hook is not None and request.headers.get("Cookie"):
        return ask_site(hook, request.headers["Cookie"], "")
    if found is None:
        if settings.demo and "user_id" in request.args:
            return Identity(checked_user_id(request.args["user_id"]))
        raise missing_credential(settings.demo)
    kind, value = found
    if kind == "ticket":
        return checked_ticket(parts().store.redis, value, accepted=tickets)
    return checked_token(value, tokens)
