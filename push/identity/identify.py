"""Who is asking: the user id a request belongs to.

Credentials are looked for in this order: `Authorization: Bearer <token>`, the
token cookie (PUSH_TOKEN_COOKIE, for EventSource, which cannot set headers),
the `token` query parameter, then a `ticket` query parameter. With PUSH_AUTH_URL, a
request with none of these (or with an Authorization header that is not a push token)
is identified by the site from its own cookies (push/identity/site_hook.py). Demo mode also
accepts a bare `user_id` parameter when no credential is given.
"""

from __future__ import annotations

import dataclasses

from flask import Flask, Request, current_app, g

from push.identity.site_hook import AuthHook
from push.identity.tickets import take_ticket
from push.identity.tokens import Identity, TokenRejected, TokenSettings, verify_token
from push.model.errors import Refusal
from push.model.keys import InvalidUserId, validate_user_id
from push.storage.store import Store


def checked_user_id(raw: object) -> str:
    """A user id fit for key names, or a 400 refusal that says what a user id is."""
    try:
        return validate_user_id(raw)
    except InvalidUserId as error:
        raise Refusal(400, "invalid_user_id", str(error)) from None


def unauthorized(error: str, detail: str) -> Refusal:
    return Refusal(401, error, detail, {"WWW-Authenticate": f'Bearer error="{error}"'})


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


def auth_hook(app: Flask) -> AuthHook | None:
    """This process's client of the site's hook (PUSH_AUTH_URL), made on first use."""
    hook = app.extensions.get("push.auth_hook")
    if hook is None and app.config.get("PUSH_AUTH_URL"):
        hook = app.extensions.setdefault(
            "push.auth_hook",
            AuthHook(
                app.config["PUSH_AUTH_URL"],
                timeout_s=app.config["PUSH_AUTH_TIMEOUT_S"],
                cache_s=app.config["PUSH_AUTH_CACHE_S"],
                max_age_s=app.config["PUSH_JWT_MAX_AGE_S"],
            ),
        )
    return hook


def ask_site(hook: AuthHook, cookie: str, authorization: str) -> Identity:
    """The site's answer; the headers it was for are kept on `g` for `ask_site_again`."""
    g.site_headers = (cookie, authorization)
    return hook.identify(cookie, authorization)


def ask_site_again(request: Request, revoked_at: float) -> Identity | None:
    """For a request the site identified from a cached answer older than a revocation at
    `revoked_at` (seconds, Redis's clock): drop that answer and ask the site again. Its
    fresh answer decides, and counts as after the revocation whatever the service's clock
    says (it was asked after the revocation was read). None when the site did not identify
    this request (a token or ticket: the revocation refuses it)."""
    headers = g.pop("site_headers", None)
    hook = auth_hook(current_app._get_current_object())  # type: ignore[attr-defined]
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
    config = current_app.config
    hook = auth_hook(current_app._get_current_object())  # type: ignore[attr-defined]
    header = request.headers.get("Authorization")
    if hook is not None and header is not None:
        bearer = header.partition(" ")[0].lower() == "bearer"
        if not (bearer and current_app.extensions["push"].tokens is not None):
            return ask_site(hook, request.headers.get("Cookie", ""), header)
    found = credential(request, config["PUSH_TOKEN_COOKIE"])
    if found is None and hook is not None and request.headers.get("Cookie"):
        return ask_site(hook, request.headers["Cookie"], "")
    if found is None:
        if config["PUSH_DEMO"] and "user_id" in request.args:
            return Identity(checked_user_id(request.args["user_id"]))
        detail = "send a token (Authorization: Bearer, cookie, or ?token=) or a ?ticket="
        if config["PUSH_DEMO"]:
            detail += ", or ?user_id= in demo mode"
        raise unauthorized("missing_token", detail)
    kind, value = found
    if kind == "ticket":
        if not tickets:
            raise unauthorized("ticket_not_accepted", "a ticket opens a stream; send the token")
        store: Store = current_app.extensions["push"].store
        identity = take_ticket(store.redis, value)
        if identity is None:
            raise unauthorized("invalid_ticket", "the ticket is unknown, used or expired")
        return identity
    settings: TokenSettings | None = current_app.extensions["push"].tokens
    if settings is None:
        raise unauthorized("tokens_not_configured", "PUSH_JWT_SECRET is not set")
    try:
        return verify_token(value, settings)
    except TokenRejected as rejected:
        raise unauthorized(rejected.code, rejected.detail) from None
