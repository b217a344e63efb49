"""Receipts without a browser: a client's `{"ack": id}` frame over WebSocket and its
`POST /ack {"id": id}` over HTTP move the acknowledged mark that
`GET /api/users/<id>/receipts` answers, as the README's "Receipts" section says.

End to end through the real service under gunicorn (demo mode: the user by `user_id`).
"""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime

import pytest
from clients import drainer_pids, open_sse, open_ws, wait_until, ws_frames
from conftest import API_KEYS

pytestmark = pytest.mark.e2e

NOTHING_YET = {"waiting": 0, "delivered": None, "acknowledged": None, "unacknowledged": 0}


def receipts(base_url: str, user_id: str) -> dict:
    request = urllib.request.Request(
        f"{base_url}/api/users/{user_id}/receipts",
        headers={"Authorization": f"Bearer {API_KEYS[0]}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def receipts_once(base_url: str, user_id: str, **expected: object) -> dict:
    """The receipts, once the marks named in `expected` (delivered, acknowledged: an id)
    and counts (waiting, unacknowledged) read so; the marks flush every 50 ms."""

    def matches() -> dict | None:
        got = receipts(base_url, user_id)
        for name, value in expected.items():
            actual = got[name]
            if isinstance(actual, dict):  # a mark: compare its id
                actual = actual["id"]
            if actual != value:
                return None
        return got

    return wait_until(matches, what=f"receipts with {expected}")


def post_ack(base_url: str, user_id: str, event_id: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base_url}/ack?user_id={user_id}",
        data=json.dumps({"id": event_id}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def assert_acknowledged_after_delivery(answer: dict) -> None:
    delivered = datetime.fromisoformat(answer["delivered"]["at"])
    acknowledged = datetime.fromisoformat(answer["acknowledged"]["at"])
    assert delivered.tzinfo is not None and acknowledged >= delivered


def test_websocket_ack_frames_move_the_acknowledged_receipt(base_url, r, user_id):
    assert receipts(base_url, user_id) == NOTHING_YET
    with open_ws(base_url, {"user_id": user_id}) as ws:
        wait_until(lambda: drainer_pids(r, user_id), what="a drainer")
        r.lpush(f"user_{user_id}_messages", "one", "two")
        first, second = (frame["id"] for frame in ws_frames(ws, 2))
        unread = receipts_once(base_url, user_id, delivered=second)
        assert (unread["waiting"], unread["acknowledged"], unread["unacknowledged"]) == (0, None, 2)

        ws.send(json.dumps({"ack": first}))
        half = receipts_once(base_url, user_id, acknowledged=first)
        assert (half["delivered"]["id"], half["unacknowledged"]) == (second, 1)

        ws.send(json.dumps({"ack": second}))
        done = receipts_once(base_url, user_id, acknowledged=second)
        assert (done["delivered"]["id"], done["waiting"], done["unacknowledged"]) == (second, 0, 0)
        assert_acknowledged_after_delivery(done)


def test_post_ack_moves_the_acknowledged_receipt(base_url, r, user_id):
    assert receipts(base_url, user_id) == NOTHING_YET
    with open_sse(base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        wait_until(lambda: drainer_pids(r, user_id), what="a drainer")
        r.lpush(f"user_{user_id}_messages", "one", "two")
        first, second = (event.id for event in stream.events(2))
        unread = receipts_once(base_url, user_id, delivered=second)
        assert (unread["waiting"], unread["acknowledged"], unread["unacknowledged"]) == (0, None, 2)

        assert post_ack(base_url, user_id, first) == (200, {"acknowledged": True})
        half = receipts(base_url, user_id)  # the ack script answered: no flush to wait for
        assert (half["acknowledged"]["id"], half["unacknowledged"]) == (first, 1)

        assert post_ack(base_url, user_id, second) == (200, {"acknowledged": True})
        done = receipts(base_url, user_id)
        assert (done["acknowledged"]["id"], done["delivered"]["id"]) == (second, second)
        assert (done["waiting"], done["unacknowledged"]) == (0, 0)
        assert_acknowledged_after_delivery(done)

        # An older id again is not newer: answered false, the mark stays.
        assert post_ack(base_url, user_id, first) == (200, {"acknowledged": False})
        assert receipts(base_url, user_id)["acknowledged"]["id"] == second
