"""Origin checks: a page on another site may not open a user's stream.

Browsers send `Origin` with every WebSocket handshake and every cross-site
EventSource. A request without one (curl, a backend) is not a browser page
acting for someone else, and passes. A page from the service's own host
passes. Any other origin must be listed in PUSH_ALLOWED_ORIGINS (`*` in demo
mode only); the rest get 403, which stops cross-site WebSocket hijacking.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Blueprint, Request, Response, current_app, g, request

from push.errors import Refusal


def cross_origin(request: Request, allowed: Iterable[str]) -> str | None:
    """The allowed foreign origin to answer with CORS headers; None when same-site or none.

    Raises a 403 refusal for an origin that is not allowed."""
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    if urlsplit(origin).netloc == request.host:
        return None
    if origin in allowed or "*" in allowed:
        return origin
    raise Refusal(403, "origin_not_allowed", f"origin {origin!r} is not in PUSH_ALLOWED_ORIGINS")


def add_cors_headers(response: Response, origin: str | None) -> Response:
    """Let an allowed page read the response, with its cookies."""
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers.add("Vary", "Origin")
    return response


def cors_post_endpoint(bp: Blueprint, path: str) -> None:
    """Origin checks and CORS (with a preflight) for a blueprint's POST endpoint that a
    page on an allowed origin calls with its token header or its cookie."""

    @bp.before_request
    def check_origin() -> None:
        g.cors_origin = cross_origin(request, current_app.config["PUSH_ALLOWED_ORIGINS"])

    @bp.after_request
    def cors(response: Response) -> Response:
        if request.method == "OPTIONS" and g.get("cors_origin"):
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
        return add_cors_headers(response, g.get("cors_origin"))

    @bp.route(path, methods=["OPTIONS"])
    def preflight() -> Response:
        return Response(status=204)
