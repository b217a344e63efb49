"""The hello a client may ask for with `?hello=1`: which user the service streams for.

A browser shared by several people keeps one cursor per user; the hello says whose
stream this is (the `sub` of the token, cookie or ticket the service accepted) before
any message, so the client files its cursor under the right user. It is sent only when
asked for: clients that take every event or frame for a message see nothing new.

SSE: `event: hello` with data `{"user": "<id>"}`, no `id:` (the cursor does not move).
WebSocket: a first frame `{"hello": true, "user": "<id>"}`.
"""

from __future__ import annotations

import json

from flask import Request

from push.edge.sse import encode_event


def wants_hello(request: Request) -> bool:
    return request.args.get("hello") == "1"


def sse_hello(user_id: str) -> bytes:
    return encode_event(json.dumps({"user": user_id}), event="hello")


def ws_hello(user_id: str) -> str:
    return json.dumps({"hello": True, "user": user_id})
