"""The delivery contract, end to end: real Redis, real gunicorn (2 gevent workers), real clients.

Producers LPUSH; the service delivers over SSE and WebSocket, first in first out,
to every connection of the user, resumable by event id.
"""

from __future__ import annotations

import json

import pytest
import redis
from clients import (
    SseStream,
    connection_pids,
    drainer_pids,
    keys_of,
    mover_pids,
    open_concurrently,
    open_sse,
    open_ws,
    wait_until,
    ws_frames,
)
from websockets.exceptions import InvalidStatus

from push.model.keys import parse_event_id, user_keys

pytestmark = pytest.mark.e2e

MAILBOX = "user_{user_id}_messages"


@pytest.fixture(params=["redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs on one Redis and again on a Redis Cluster..."""
    return request.param


@pytest.fixture(params=["notify", "block"])
def watch(request: pytest.FixtureRequest) -> str:
    """... with the per-worker mailbox watcher, and again with blocking movers."""
    return request.param


def mailbox(user_id: str) -> str:
    return MAILBOX.format(user_id=user_id)


def wait_connected(r: redis.Redis, user_id: str) -> None:
    """A stream is registered once a worker drains the user (holds its mover lease)."""
    wait_until(lambda: drainer_pids(r, user_id), what=f"a drainer for {user_id}")


def test_sse_answers_with_event_stream_headers_and_retry(base_url, r, user_id):
    with open_sse(base_url, {"user_id": user_id}) as stream:
        assert stream.status == 200
        assert stream.header("Content-Type").startswith("text/event-stream")
        assert stream.header("Cache-Control") == "no-cache"
        assert stream.header("X-Accel-Buffering") == "no"
        stream.wait_for_comment("connected")
        assert stream.retry is not None and stream.retry >= 1000


def test_sse_delivers_a_live_message(base_url, r, user_id):
    with open_sse(base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        r.lpush(mailbox(user_id), "hello")
        event = stream.next_event()
        assert event.data == "hello"
        assert parse_event_id(event.id)


def test_ws_delivers_a_live_message_as_json(base_url, r, user_id):
    with open_ws(base_url, {"user_id": user_id}) as ws:
        wait_connected(r, user_id)
        r.lpush(mailbox(user_id), '{"kind": "like", "post": 7}')
        (frame,) = ws_frames(ws, 1)
        assert frame["data"] == '{"kind": "like", "post": 7}'
        assert parse_event_id(frame["id"])
        assert set(frame) == {"id", "data"}


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_first_in_first_out(base_url, r, user_id, transport):
    payloads = [f"m{i}" for i in range(60)]
    if transport == "sse":
        client = open_sse(base_url, {"user_id": user_id})
        client.wait_for_comment("connected")
    else:
        client = open_ws(base_url, {"user_id": user_id})
        wait_connected(r, user_id)
    with client:
        for payload in payloads[:20]:
            r.lpush(mailbox(user_id), payload)
        r.lpush(mailbox(user_id), *payloads[20:])  # one LPUSH of many: still oldest first
        if transport == "sse":
            received = [event.data for event in client.events(60)]
        else:
            received = [frame["data"] for frame in ws_frames(client, 60)]
    assert received == payloads


def test_multi_line_payloads_arrive_whole(base_url, r, user_id):
    payloads = ["a\nb", "c\r\nd", "e\rf", "line\n\nwith blank", "", " leading space"]
    with (
        open_sse(base_url, {"user_id": user_id}) as stream,
        open_ws(base_url, {"user_id": user_id}) as ws,
    ):
        stream.wait_for_comment("connected")
        wait_until(lambda: len(drainer_pids(r, user_id)) >= 1)
        for payload in payloads:
            r.lpush(mailbox(user_id), payload)
        sse_data = [event.data for event in stream.events(len(payloads))]
        ws_data = [frame["data"] for frame in ws_frames(ws, len(payloads))]
    # SSE turns every line break into \n (the one change SSE makes); WebSocket is exact.
    assert sse_data == ["a\nb", "c\nd", "e\nf", "line\n\nwith blank", "", " leading space"]
    assert ws_data == payloads


def test_unicode_arrives_intact(base_url, r, user_id):
    payload = "héllo wörld ✓ 你好 🎉"
    with (
        open_sse(base_url, {"user_id": user_id}) as stream,
        open_ws(base_url, {"user_id": user_id}) as ws,
    ):
        stream.wait_for_comment("connected")
        wait_connected(r, user_id)
        r.lpush(mailbox(user_id), payload.encode())
        assert stream.next_event().data == payload
        assert ws_frames(ws, 1)[0]["data"] == payload


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_backlog_of_an_offline_user_comes_first_in_order(base_url, r, user_id, transport):
    r.lpush(mailbox(user_id), "waited 1", "waited 2", "waited 3")
    if transport == "sse":
        with open_sse(base_url, {"user_id": user_id}) as stream:
            backlog = [event.data for event in stream.events(3)]
            r.lpush(mailbox(user_id), "live")
            assert stream.next_event().data == "live"
    else:
        with open_ws(base_url, {"user_id": user_id}) as ws:
            backlog = [frame["data"] for frame in ws_frames(ws, 3)]
            r.lpush(mailbox(user_id), "live")
            assert ws_frames(ws, 1)[0]["data"] == "live"
    assert backlog == ["waited 1", "waited 2", "waited 3"]
    assert r.llen(mailbox(user_id)) == 0


def test_fan_out_to_every_connection_on_both_workers(base_url, r, user_id, watch):
    keys = user_keys(user_id, MAILBOX)
    clients = []
    try:
        # Open connections until the user has some in both workers (at most 20 a user).
        for _ in range(2):
            clients += open_concurrently(base_url, user_id, 8)
            opened = len(clients)
            wait_until(lambda opened=opened: r.zcard(keys.presence) == opened)
            if len(connection_pids(r, user_id)) == 2:
                break
        assert len(connection_pids(r, user_id)) == 2, "the connections never spanned both workers"
        streams = [client for client in clients if isinstance(client, SseStream)]
        sockets = [client for client in clients if not isinstance(client, SseStream)]
        # One drainer for the user across both workers: one blocked connection in Redis
        # with blocking movers, none with the mailbox watcher.
        wait_until(lambda: len(drainer_pids(r, user_id)) == 1, what="exactly one drainer")
        assert len(mover_pids(r, user_id)) == (1 if watch == "block" else 0)
        wait_until(lambda: all(sock.protocol.state.name == "OPEN" for sock in sockets))
        payloads = [f"fan {i}" for i in range(10)]
        for payload in payloads:
            r.lpush(mailbox(user_id), payload)
        for stream in streams:
            assert [event.data for event in stream.events(10)] == payloads
        ids = None
        for sock in sockets:
            frames = ws_frames(sock, 10)
            assert [frame["data"] for frame in frames] == payloads
            # The same event ids everywhere: one history, read by every connection.
            ids = ids or [frame["id"] for frame in frames]
            assert [frame["id"] for frame in frames] == ids
    finally:
        for client in clients:
            client.close()


def test_resume_by_last_event_id_header(base_url, r, user_id):
    with open_sse(base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        r.lpush(mailbox(user_id), "one", "two", "three")
        events = stream.events(3)
    with open_sse(base_url, {"user_id": user_id}, {"Last-Event-ID": events[0].id}) as stream:
        resumed = stream.events(2)
        assert [event.data for event in resumed] == ["two", "three"]
        assert [event.id for event in resumed] == [events[1].id, events[2].id]
        r.lpush(mailbox(user_id), "four")
        assert stream.next_event().data == "four"


def test_resume_by_last_event_id_parameter(base_url, r, user_id):
    with open_ws(base_url, {"user_id": user_id}) as ws:
        wait_connected(r, user_id)
        r.lpush(mailbox(user_id), "one", "two", "three")
        frames = ws_frames(ws, 3)
    with open_ws(base_url, {"user_id": user_id, "last_event_id": frames[0]["id"]}) as ws:
        assert [frame["data"] for frame in ws_frames(ws, 2)] == ["two", "three"]
    with open_sse(base_url, {"user_id": user_id, "last_event_id": frames[1]["id"]}) as stream:
        assert stream.next_event().data == "three"


def test_a_cursor_older_than_the_history_gets_a_reset(base_url, r, user_id):
    total = 1200  # history keeps 1000: the first 200 are trimmed once delivered
    with open_sse(base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        r.lpush(mailbox(user_id), *[f"n{i}" for i in range(total)])
        events = stream.events(total)
    assert [event.data for event in events] == [f"n{i}" for i in range(total)]
    keys = user_keys(user_id, MAILBOX)
    trimmed = wait_until(lambda: r.hget(keys.state, "trimmed"), what="a trimmed id")
    assert trimmed == events[199].id

    with open_sse(base_url, {"user_id": user_id}, {"Last-Event-ID": events[5].id}) as stream:
        reset = stream.next_event()
        assert (reset.event, reset.id) == ("reset", trimmed)
        assert stream.next_event().data == "n200"
    with open_ws(base_url, {"user_id": user_id, "last_event_id": events[5].id}) as ws:
        first, second = ws_frames(ws, 2)
        assert first == {"reset": True, "id": trimmed}
        assert second["data"] == "n200"
    # A cursor inside the kept history is no reset.
    with open_sse(base_url, {"user_id": user_id}, {"Last-Event-ID": events[1100].id}) as stream:
        assert stream.next_event().data == "n1101"


def test_without_cursor_a_connection_starts_after_the_delivered_mark(base_url, r, user_id):
    with open_sse(base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        r.lpush(mailbox(user_id), "seen")
        seen = stream.next_event()
        assert seen.data == "seen"
    # Marks are written every 50 ms at most (push/delivery/marks.py).
    state = user_keys(user_id, MAILBOX).state
    wait_until(lambda: r.hget(state, "delivered_id") == seen.id, what="the delivered mark")
    r.lpush(mailbox(user_id), "unseen")
    with open_ws(base_url, {"user_id": user_id}) as ws:
        assert [frame["data"] for frame in ws_frames(ws, 1)] == ["unseen"]


@pytest.mark.parametrize("backend", ["redis"])
def test_tabs_that_open_where_delivery_stands_do_not_read_the_history(base_url, r, user_id):
    """A tab without a cursor, opened when the history holds nothing after the delivered
    mark, on a worker that already has the user's channel, is handed what comes next like
    the others: no history read of its own (a worker's first tab of a user still reads)."""
    state = user_keys(user_id, MAILBOX).state
    tabs = [open_sse(base_url, {"user_id": user_id})]
    try:
        tabs[0].wait_for_comment("connected")
        r.lpush(mailbox(user_id), "before")
        seen = tabs[0].next_event()
        wait_until(lambda: r.hget(state, "delivered_id") == seen.id, what="the delivered mark")
        reads_before = history_reads(r)
        for _ in range(10):
            tabs.append(open_sse(base_url, {"user_id": user_id}))
            tabs[-1].wait_for_comment("connected")
        reads = history_reads(r) - reads_before
        r.lpush(mailbox(user_id), "after")
        assert [tab.next_event().data for tab in tabs] == ["after"] * len(tabs)
    finally:
        for tab in tabs:
            tab.close()
    # The other worker's first tab reads once, and each of the user's two channels re-reads
    # every 4 heartbeats (1 s here): at most 2 each while the 10 tabs open (under 8 s).
    # Before, each tab read: 9 reads (two tabs shared one).
    assert reads <= 5, f"{reads} history reads for 10 tabs that had everything"


def history_reads(r: redis.Redis) -> int:
    """XRANGE calls so far: the service's history reads (and the drain script's trims of a
    full history, which no drain here makes)."""
    return r.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0)


def test_a_message_moved_but_never_written_reaches_the_next_connection(base_url, r, store, user_id):
    """The mover put it in the history, then the only tab went away before it was written."""
    from push.delivery.mover import drain
    from push.model.settings import DeliverySettings, load_config

    with open_sse(base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        r.lpush(mailbox(user_id), "first")
        first = stream.next_event()
        assert first.data == "first"
    wait_until(lambda: not drainer_pids(r, user_id), what="the mover to stop")
    # Marks are written every 50 ms at most (push/delivery/marks.py): "first" is marked delivered.
    keys = user_keys(user_id, MAILBOX)
    wait_until(lambda: store.delivered_mark(keys) == first.id, what="the delivered mark")
    # What a mover does before its worker is killed: the message leaves the mailbox
    # for the history, and no connection is left to write it.
    r.lpush(mailbox(user_id), "in flight")
    settings = DeliverySettings.from_config(load_config({"PUSH_DEMO": "1"}))
    assert drain(store, keys, settings).moved == 1
    assert r.llen(mailbox(user_id)) == 0

    with open_sse(base_url, {"user_id": user_id}) as stream:
        assert stream.next_event().data == "in flight"


def test_what_a_dead_mover_left_in_pending_is_delivered_first(base_url, r, user_id):
    keys = user_keys(user_id, MAILBOX)
    r.lpush(keys.pending, "left by a killed worker")
    r.lpush(mailbox(user_id), "newer")
    with open_ws(base_url, {"user_id": user_id}) as ws:
        assert [f["data"] for f in ws_frames(ws, 2)] == ["left by a killed worker", "newer"]
    assert r.llen(keys.pending) == 0


def test_a_long_backlog_is_delivered_whole_and_the_history_stays_capped(base_url, r, user_id):
    total = 3000  # three times the history cap
    for start in range(0, total, 500):
        r.lpush(mailbox(user_id), *[f"b{i}" for i in range(start, start + 500)])
    with open_sse(base_url, {"user_id": user_id}) as stream:
        events = stream.events(total, timeout=60)
    assert [event.data for event in events] == [f"b{i}" for i in range(total)]
    assert all(event.event == "message" for event in events)
    assert r.xlen(user_keys(user_id, MAILBOX).history) <= 1000


@pytest.mark.parametrize(
    "bad_id", ["", "x" * 65, "has space", "*", "{tag}", "a}b", "a/b", "..", "nul\0", "ünï"]
)
def test_bad_user_ids_are_refused_before_any_key_is_touched(base_url, r, bad_id):
    r.set("canary", "1")
    with open_sse(base_url, {"user_id": bad_id}) as stream:
        assert stream.status == 400
        body = json.loads(stream.read_to_end())
        assert body["error"] == "invalid_user_id"
        assert "1-64" in body["detail"]
    with pytest.raises(InvalidStatus) as refused:
        open_ws(base_url, {"user_id": bad_id})
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body)["error"] == "invalid_user_id"
    assert keys_of(r, bad_id) == []
    assert r.get("canary") == "1"


def test_a_request_naming_no_user_is_refused(base_url):
    with open_sse(base_url) as stream:
        assert stream.status == 401
        assert json.loads(stream.read_to_end())["error"] == "missing_token"


@pytest.mark.parametrize("cursor", ["abc", "1-2-3", "-1-0", "1.5-0"])
def test_a_malformed_cursor_is_refused(base_url, user_id, cursor):
    with open_sse(base_url, {"user_id": user_id}, {"Last-Event-ID": cursor}) as stream:
        assert stream.status == 400
        assert json.loads(stream.read_to_end())["error"] == "invalid_last_event_id"
    with pytest.raises(InvalidStatus) as refused:
        open_ws(base_url, {"user_id": user_id, "last_event_id": cursor})
    assert refused.value.response.status_code == 400


def test_heartbeat_comments_keep_an_idle_stream_alive(base_url, user_id):
    with open_sse(base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        stream.wait_for_comment("keepalive", timeout=5)  # the test service beats every 1 s
        stream.wait_for_comment("keepalive", timeout=5)


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_a_client_that_hangs_up_is_released_within_two_seconds(base_url, r, user_id, transport):
    client = (
        open_sse(base_url, {"user_id": user_id})
        if transport == "sse"
        else open_ws(base_url, {"user_id": user_id})
    )
    wait_connected(r, user_id)
    client.close()
    wait_until(lambda: not drainer_pids(r, user_id), timeout=2, what="the mover to be released")
