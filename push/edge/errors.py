"""Error answers, all as `{"error": ..., "detail": ...}` with their status: a Refusal,
Redis or the site's hook being away (one answer for both: 503 `unavailable` with
`Retry-After`), and werkzeug's own errors (404, 405, ...).

The streams are the exceptions: admission (push/edge/admission.py) catches Redis and
the hook being away itself, because an SSE request is never answered 503 (a native
EventSource gives up for good on any non-200: it gets 200, `retry:` and a close), and a
WebSocket is refused in `before_request` (flask-sock answers 101 before its view runs)."""

from __future__ import annotations

import re

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from push.metrics import REDIS_ERRORS
from push.model.errors import HookUnavailable, Refusal
from push.storage.clients import REDIS_UNAVAILABLE

#: Seconds a client is told to wait before it asks again while Redis or the site's hook is
#: away: a Redis restart or failover takes a few seconds, and callers retry by themselves.
UNAVAILABLE_RETRY_AFTER_S = 2


def refusal_response(refusal: Refusal) -> Response:
    response = jsonify(error=refusal.error, detail=refusal.detail)
    response.status_code = refusal.status
    response.headers.update(refusal.headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def http_exception_response(exception: HTTPException) -> Response:
    """Werkzeug's own errors (404, 405, ...) in the same JSON shape."""
    error = re.sub(r"[^a-z]+", "_", (exception.name or "error").lower()).strip("_")
    refusal = Refusal(exception.code or 500, error, exception.description or "")
    return refusal_response(refusal)


def unavailable(why: str) -> Refusal:
    """The one answer for "a part the service needs is away; come back shortly"."""
    return Refusal(
        503, "unavailable", f"{why}; try again", {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)}
    )


def redis_unavailable_response(error: Exception) -> Response:
    """Redis did not answer a request's command (a lost connection, a timeout, a cluster
    without a primary for the slot)."""
    REDIS_ERRORS.labels("request").inc()
    return refusal_response(unavailable("redis did not answer"))


def hook_unavailable_response(error: Exception) -> Response:
    """The site's auth hook gave no usable answer (an ack or a ticket)."""
    return refusal_response(unavailable(str(error)))


def init_app(app: Flask) -> None:
    app.register_error_handler(Refusal, refusal_response)
    for kind in REDIS_UNAVAILABLE:
        app.register_error_handler(kind, redis_unavailable_response)
    app.register_error_handler(HookUnavailable, hook_unavailable_response)
    app.register_error_handler(HTTPException, http_exception_response)
