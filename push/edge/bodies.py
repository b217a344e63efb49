"""Request bodies: bounded in size and in time, and read before any view runs.

Every request that declares a body (a Content-Length or chunked
Transfer-Encoding) has it read here, in `before_request`, under two bounds:

- size: `request.max_content_length`, per endpoint. Werkzeug refuses a
  Content-Length over it before reading a byte, and stops a chunked body as it
  passes it: 413 `body_too_large`. The views then parse the body read here.
- time: PUSH_BODY_TIMEOUT_S for the whole body, however it trickles in: 408
  `body_timeout`.
- length: a body that ends before its Content-Length: 400 `body_incomplete`.

After either refusal the rest of the body is never read: the connection closes
after the answer, instead of gunicorn draining it for the next request.
"""

from __future__ import annotations

import gevent
from flask import Flask, Request, current_app, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from push.edge.openapi import MAX_USERS_PER_CALL
from push.model.errors import Refusal

#: An ack is `{"id": "<event id>"}`, under 100 bytes, and /ticket takes no body: 4 KiB,
#: the bound of a WebSocket client frame, which carries the same ack.
SMALL_BODY_BYTES = 4096
#: Bytes of a publish body beyond its message: room for 1000 ids and the JSON around them.
BODY_OVERHEAD_BYTES = MAX_USERS_PER_CALL * 80 + 4096
#: A payload byte may take up to 6 in JSON (a control character is `\\u0001`).
JSON_EXPANSION = 6
#: Blueprints whose bodies carry a message (the publish API, the demo's send box).
MESSAGE_BLUEPRINTS = frozenset({"api", "demo"})


class BodyTimeout(Exception):
    """The body did not arrive within PUSH_BODY_TIMEOUT_S. An Exception, not gevent's
    BaseException Timeout, so that gunicorn marks the body's reading as failed and
    closes the connection instead of reading on."""


def message_body_limit(max_message_bytes: int) -> int:
    """The largest body that can carry a message of `max_message_bytes` to many users."""
    return max_message_bytes * JSON_EXPANSION + BODY_OVERHEAD_BYTES


def body_limit(blueprint: str | None, max_message_bytes: int) -> int:
    """Bytes a request body to an endpoint of `blueprint` may have."""
    if blueprint in MESSAGE_BLUEPRINTS:
        return message_body_limit(max_message_bytes)
    return SMALL_BODY_BYTES


def declares_body(request: Request) -> bool:
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return chunked or bool(request.content_length)


def close_after_answer(request: Request) -> None:
    """Have the server close the connection after this answer rather than read the rest
    of the body (gunicorn closes a connection whose body failed to read)."""
    body = request.environ.get("wsgi.input")
    if hasattr(body, "failed"):
        body.failed = True


def read_body() -> None:
    """before_request: read the body within its bounds, or refuse the request."""
    config = current_app.config
    limit = body_limit(request.blueprint, config["PUSH_MAX_MESSAGE_BYTES"])
    # One byte more than allowed: werkzeug's stream stops quietly at its limit (a chunked
    # body would be cut short, not refused), so reading past `limit` is what refuses.
    request.max_content_length = limit + 1
    if not declares_body(request):
        return
    timeout_s = config["PUSH_BODY_TIMEOUT_S"]
    too_large = Refusal(413, "body_too_large", f"the body is larger than {limit} bytes")
    try:
        with gevent.Timeout(timeout_s, BodyTimeout):
            body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        close_after_answer(request)
        raise too_large from None
    except BodyTimeout:
        close_after_answer(request)
        raise Refusal(
            408, "body_timeout", f"the body took longer than {timeout_s:g} s (PUSH_BODY_TIMEOUT_S)"
        ) from None
    except ClientDisconnected:
        close_after_answer(request)
        raise Refusal(
            400, "body_incomplete", "the connection broke while the body was read"
        ) from None
    if len(body) > limit:
        close_after_answer(request)
        raise too_large
    if request.content_length is not None and len(body) < request.content_length:
        close_after_answer(request)
        raise Refusal(400, "body_incomplete", "the body ended before its Content-Length")


def init_app(app: Flask) -> None:
    # The bound of any body read outside `read_body`.
    app.config["MAX_CONTENT_LENGTH"] = SMALL_BODY_BYTES
    app.before_request(read_body)
