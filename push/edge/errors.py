"""Error answers: a Refusal, the site hook's silence and werkzeug's own errors (404, 405, ...),
all as `{"error": ..., "detail": ...}` with their status."""

from __future__ import annotations

import re

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from push.model.errors import HookUnavailable, Refusal


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


def hook_unavailable_response(error: Exception) -> Response:
    """The site's auth hook gave no usable answer (an ack or a ticket): come back soon."""
    return refusal_response(
        Refusal(503, "unavailable", f"{error}; try again", {"Retry-After": "2"})
    )


def init_app(app: Flask) -> None:
    app.register_error_handler(Refusal, refusal_response)
    app.register_error_handler(HookUnavailable, hook_unavailable_response)
    app.register_error_handler(HTTPException, http_exception_response)
