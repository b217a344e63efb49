"""Acks end to end against gunicorn: what a burst costs Redis, and which acks count.

A WebSocket client's acks are kept per connection (the newest entry it was handed,
the newest ack it sent) and go with the delivered marks' flush; POST /ack is bounded
by the ack script. Script calls are counted with `INFO commandstats` of this module's
own Redis.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import jwt
import pytest
from clients import drainer_pids, open_ws, wait_until, ws_frames
from servers import Gunicorn, own_redis, service_env

from push.model.keys import user_keys

pytestmark = pytest.mark.e2e

SECRET = "tests-only-secret-0123456789abcdef"
#: Script calls a burst of acks may cost (a flush every 50 ms while it is read, and
#: whatever else the worker runs meanwhile): far below one per ack.
A_HANDFUL = 10
#: A well-formed id after anything these tests deliver.
FUTURE_ID = "99999999999999-0"


def mint(sub: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 300}, SECRET, "HS256")


redis_server, r = own_redis("acks")


@pytest.fixture(scope="module")
def url(redis_server, tmp_path_factory):
    env = service_env(redis_server.url, PUSH_JWT_SECRET=SECRET)
    server = Gunicorn(tmp_path_factory.mktemp("acks") / "gunicorn.log", env, workers=1).start()
    yield server.base_url
    server.stop()


def script_calls(r) -> int:
    """Lua scripts and functions Redis has run so far."""
    stats = r.info("commandstats")
    return sum(
        stats.get(f"cmdstat_{name}", {}).get("calls", 0)
        for name in ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")
    )


def acked_id(r, user: str) -> str | None:
    return r.hget(user_keys(user, "user_{user_id}_messages").state, "acked_id")


def delivered_id(r, user: str) -> str | None:
    return r.hget(user_keys(user, "user_{user_id}_messages").state, "delivered_id")


def send_in_one_write(ws, frames: list[str]) -> None:
    """Every frame in one socket write, as a client flushing a queue would."""
    with ws.protocol_mutex:
        for frame in frames:
            ws.protocol.send_text(frame.encode())
        ws.socket.sendall(b"".join(ws.protocol.data_to_send()))


def delivered(ws, r, user: str, count: int) -> list[str]:
    """Publish `count` messages to `user` and read them on `ws`; their ids, once the
    delivered mark has reached the newest."""
    r.lpush(f"user_{user}_messages", *[f"m{i}" for i in range(count)])
    ids = [frame["id"] for frame in ws_frames(ws, count)]
    wait_until(lambda: delivered_id(r, user) == ids[-1], what="the delivered mark")
    return ids


def ignored(url: str, reason: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = f'push_acks_ignored_total{{reason="{reason}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def post_ack(url: str, user: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + "/ack",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {mint(user)}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_a_burst_of_300_websocket_acks_costs_a_handful_of_script_calls(url, r):
    user = "burst"
    with open_ws(url, {"token": mint(user)}) as ws:
        wait_until(lambda: drainer_pids(r, user))
        ids = delivered(ws, r, user, 300)
        before = script_calls(r)
        send_in_one_write(ws, [json.dumps({"ack": event_id}) for event_id in ids])
        wait_until(lambda: acked_id(r, user) == ids[-1], what="the newest ack to be recorded")
        calls = script_calls(r) - before
        assert calls <= A_HANDFUL, f"{calls} script calls for 300 acks"
        r.lpush(f"user_{user}_messages", "still open")
        assert ws_frames(ws, 1)[0]["data"] == "still open"


def test_a_websocket_ack_of_an_id_never_delivered_does_not_freeze_receipts(url, r):
    user = "future-acker"
    with open_ws(url, {"token": mint(user)}) as ws:
        wait_until(lambda: drainer_pids(r, user))
        first, second = delivered(ws, r, user, 2)
        ws.send(json.dumps({"ack": first}))
        wait_until(lambda: acked_id(r, user) == first, what="the first ack")
        ignored_before = ignored(url, "not_delivered")
        ws.send(json.dumps({"ack": FUTURE_ID}))
        ws.send(json.dumps({"ack": second}))
        wait_until(lambda: acked_id(r, user) == second, what="a later valid ack")
        assert ignored(url, "not_delivered") == ignored_before + 1
        r.lpush(f"user_{user}_messages", "still open")  # ignored, not refused
        assert ws_frames(ws, 1)[0]["data"] == "still open"


def test_a_websocket_ack_not_newer_than_the_last_is_ignored(url, r):
    user = "repeat-acker"
    with open_ws(url, {"token": mint(user)}) as ws:
        wait_until(lambda: drainer_pids(r, user))
        first, second = delivered(ws, r, user, 2)
        ws.send(json.dumps({"ack": second}))
        wait_until(lambda: acked_id(r, user) == second)
        ignored_before = ignored(url, "not_newer")
        ws.send(json.dumps({"ack": first}))
        ws.send(json.dumps({"ack": second}))
        wait_until(lambda: ignored(url, "not_newer") >= ignored_before + 2)
        assert acked_id(r, user) == second


def test_post_ack_of_an_id_never_delivered_does_not_freeze_receipts(url, r):
    user = "sse-acker"
    with open_ws(url, {"token": mint(user)}) as ws:
        wait_until(lambda: drainer_pids(r, user))
        first, second = delivered(ws, r, user, 2)
    assert post_ack(url, user, json.dumps({"id": first}).encode()) == (200, {"acknowledged": True})
    future = json.dumps({"id": FUTURE_ID}).encode()
    assert post_ack(url, user, future) == (200, {"acknowledged": False})
    assert acked_id(r, user) == first
    assert post_ack(url, user, json.dumps({"id": second}).encode()) == (200, {"acknowledged": True})
    assert acked_id(r, user) == second
    assert post_ack(url, user, json.dumps({"id": first}).encode()) == (200, {"acknowledged": False})
    assert acked_id(r, user) == second
