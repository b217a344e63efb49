"""Origin checks: a page on another site may not open a user's stream.

Browsers send `Origin` with every WebSocket handshake and every cross-origin
EventSource or POST. A page of the service's own origin (same scheme, host and
port as the request, as werkzeug sees it: behind PUSH_TRUSTED_PROXIES that is
the X-Forwarded-* of our proxies) passes. Any other origin must be listed in
PUSH_ALLOWED_ORIGINS (`*` in demo mode only); the rest get 403, which stops
cross-site WebSocket hijacking.

A request without `Origin` (curl, a backend) is not a browser page acting for
someone else, and passes, with one exception: a request that presents the
token cookie. Browsers attach cookies, but no `Origin`, to a navigation, an
`<img>` or an `<iframe>` made by a page of another site; they say so in
`Sec-Fetch-Site`. A cookie request that has no `Origin` passes only when
`Sec-Fetch-Site` is `same-origin` (a same-origin EventSource, which carries no
`Origin`), `none` (the user opened the URL) or absent (curl, a backend, or a
browser too old to send Sec-Fetch-*: refusing those would refuse that
browser's same-origin EventSource). `cross-site` and `same-site` (a sibling
subdomain) without an allowed `Origin` get 403. With PUSH_AUTH_URL, any request with
a Cookie header counts as presenting a cookie unless a push Bearer token identifies it:
the site is sent the Cookie beside any other Authorization.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Blueprint, Request, Response, current_app, g, request

from push.edge.parts import parts
from push.model.errors import Refusal

#: The port each scheme implies when an origin or a Host names none.
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Sec-Fetch-Site values of requests a page of another origin made: a cookie on one of
#: them without an allowed Origin was attached by the browser, not sent by the user's page.
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})


def origin_tuple(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as https://a.example:8443, with the port
    its scheme implies when it names none; None for anything else (`null`, a bad port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme, parts.hostname
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, DEFAULT_PORTS[scheme] if port is None else port


def same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether `origin` is the origin of a request made with `scheme` to `host` (the Host
    header, `name[:port]`): scheme, host and port must all match."""
    ours = origin_tuple(f"{scheme}://{host}")
    return ours is not None and origin_tuple(origin) == ours


def foreign_origin(
    origin: str | None,
    scheme: str,
    host: str,
    allowed: Iterable[str],
    *,
    fetch_site: str | None = None,
    by_cookie: bool = False,
) -> str | None:
    """The allowed foreign origin to answer with CORS headers; None when same-origin or
    none. Raises a 403 refusal for an origin that is not allowed, and for a cookie
    credential that a page of another site's browser attached (see the module's text)."""
    if origin is None:
        if by_cookie and (fetch_site or "").lower() in FOREIGN_FETCH_SITES:
            raise Refusal(
                403,
                "origin_not_allowed",
                f"a cookie from a {fetch_site} request without an allowed Origin "
                "(a page of another site made it)",
            )
        return None
    if same_origin(origin, scheme, host):
        return None
    if origin in allowed or "*" in allowed:
        return origin
    raise Refusal(403, "origin_not_allowed", f"origin {origin!r} is not in PUSH_ALLOWED_ORIGINS")


def push_checks_bearer(request: Request) -> bool:
    """Whether the request's Authorization is a Bearer token that push checks itself (the
    token settings are configured). Any other Authorization is, with PUSH_AUTH_URL, passed
    on to the site beside the Cookie (push/identity/identify.py branches the same way)."""
    header = request.headers.get("Authorization")
    return (
        header is not None
        and header.partition(" ")[0].lower() == "bearer"
        and parts().tokens is not None
    )


def cookie_credentialed(request: Request, cookie: str | None) -> bool:
    """Whether a cookie may be what identifies the request. Without PUSH_AUTH_URL: the token
    cookie `cookie` is set and no Authorization header is sent. With it: any Cookie header,
    unless a push Bearer token identifies the request instead (the site would be sent the
    Cookie beside any other Authorization, such as the HTTP Basic credentials a browser
    attaches to another site's <img>)."""
    if cookie is None:
        return False
    if current_app.config.get("PUSH_AUTH_URL") and request.headers.get("Cookie"):
        return not push_checks_bearer(request)
    return "Authorization" not in request.headers and bool(request.cookies.get(cookie))


def cross_origin(request: Request, allowed: Iterable[str], cookie: str | None = None) -> str | None:
    """`foreign_origin` for a request; a cookie-credentialed one (`cookie_credentialed`) is
    held to Sec-Fetch-Site."""
    return foreign_origin(
        request.headers.get("Origin"),
        request.scheme,
        request.host,
        allowed,
        fetch_site=request.headers.get("Sec-Fetch-Site"),
        by_cookie=cookie_credentialed(request, cookie),
    )


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
        config = current_app.config
        g.cors_origin = cross_origin(
            request, config["PUSH_ALLOWED_ORIGINS"], config["PUSH_TOKEN_COOKIE"]
        )

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
