"""What a closed stream leaves behind: objects in reference cycles wait for a full garbage
collection, which the worker's GC thresholds make rare (push/runtime.py), so a stream
and a user's channel must be freed by reference counting when they end."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import run_for_json

SCRIPT = Path(__file__).parent / "cyclic_garbage.py"
STREAMS = 100
#: Left per closed stream: flask-sock's class per WebSocket request and werkzeug's route
#: matcher closure are cycles of their own (a few small objects). Before the cycles were
#: broken: about 154 per SSE stream (the channel's killed greenlets kept it, and the
#: mover's connection) and 84 per WebSocket (the Server, its socket and buffers).
MOST_PER_STREAM = {"sse": 20, "ws": 50}


@pytest.fixture(
    scope="module",
    params=[("sse", "notify"), ("ws", "notify"), ("sse", "block"), ("ws", "block")],
    ids=lambda param: "-".join(param),
)
def measured(redis_server, request) -> dict:
    """What STREAMS streams of one transport held while open and left in cycles, with the
    mailbox watcher or with blocking movers."""
    transport, watch = request.param
    measured = run_for_json(
        [str(SCRIPT), transport, str(STREAMS)],
        timeout=120,
        REDIS_URL=redis_server.url,
        PUSH_MAILBOX_WATCH=watch,
    )
    return {"transport": transport, "watch": watch, **measured}


def test_a_closed_stream_leaves_little_for_the_garbage_collector(measured):
    per_stream = measured["cyclic_objects"] / measured["streams"]
    most = MOST_PER_STREAM[measured["transport"]]
    assert per_stream < most, f"{per_stream:.1f} objects a stream in cycles"


def test_an_idle_stream_holds_one_greenlet_and_an_idle_user_none(measured):
    """A parked greenlet costs several KB (its saved stack and frames): an idle stream
    holds its view's; an idle user holds none with the mailbox watcher (one greenlet per
    worker and Redis server watches every user) and its mover's with blocking movers;
    simple-websocket's reader and the user's pump run only when there is something to
    read. Before: 3 per WebSocket and 2 per user."""
    per_user = 1 if measured["watch"] == "block" else 0
    assert measured["greenlets"] <= measured["streams"] + per_user * measured["users"]
