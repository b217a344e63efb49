"""Publishing for backends: the Python helper, the HTTP API and the CLI, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from clients import (
    connection_pids,
    drainer_pids,
    keys_of,
    open_concurrently,
    open_sse,
    open_ws,
    wait_until,
    ws_frames,
)
from conftest import API_KEYS
from servers import ROOT, service_env
from websockets.exceptions import ConnectionClosed

from push import PublishError, publish, publish_many
from push.model.keys import user_keys
from push.service import create_app

pytestmark = pytest.mark.e2e

#: On one Redis and on a Redis Cluster: producers with a cluster client just work.
ON_BOTH = pytest.mark.parametrize("backend", ["redis", "cluster"])


def call(base_url, method, path, body=None, headers=None, key=API_KEYS[1]):
    """(status, JSON answer) of an API call."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


@pytest.fixture
def both(base_url, r, user_id):
    """An SSE and a WebSocket connection of the test's user, both registered."""
    with (
        open_sse(base_url, {"user_id": user_id}) as stream,
        open_ws(base_url, {"user_id": user_id}) as ws,
    ):
        stream.wait_for_comment("connected")
        wait_until(lambda: drainer_pids(r, user_id))
        yield stream, ws


def received(both, count=1):
    stream, ws = both
    sse = [event.data for event in stream.events(count)]
    assert [frame["data"] for frame in ws_frames(ws, count)] == sse
    return sse


# The Python helper ------------------------------------------------------------------


@ON_BOTH
def test_the_helper_delivers_and_says_how_many_connections_are_open(both, r, user_id):
    assert publish(r, user_id, "from python") == 2
    assert publish(r, user_id, {"kind": "like", "post": 7, "by": "zoë"}) == 2
    assert publish(r, user_id, b"raw bytes") == 2
    assert received(both, 3) == ["from python", '{"kind":"like","post":7,"by":"zoë"}', "raw bytes"]


@ON_BOTH
def test_publish_many_reaches_every_user_in_one_call(base_url, r):
    users = [f"many{i}" for i in range(3)]
    with open_ws(base_url, {"user_id": users[0]}) as ws:
        wait_until(lambda: drainer_pids(r, users[0]))
        online = publish_many(r, users, "to all")
        assert online == {users[0]: 1, users[1]: 0, users[2]: 0}
        assert ws_frames(ws, 1)[0]["data"] == "to all"
    assert r.lrange(f"user_{users[1]}_messages", 0, -1) == ["to all"]


@pytest.mark.parametrize(
    ("user_id", "data", "code"),
    [
        ("a b", "x", "invalid_user_id"),
        ("42", "x" * 65537, "too_large"),
        ("42", b"\xff\xfe", "not_utf8"),
        ("42", {1, 2}, "not_serializable"),
        ("42", float("nan"), "not_serializable"),
    ],
)
def test_the_helper_refuses_what_the_service_would(r, user_id, data, code):
    with pytest.raises(PublishError) as refused:
        publish(r, user_id, data)
    assert refused.value.code == code
    assert keys_of(r, user_id) == []


@ON_BOTH
def test_the_helper_queues_once_per_idempotency_key(r, user_id):
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(lambda _: publish(r, user_id, "once", idempotency_key="order-1"), range(10))
        )
    assert answers == [0] * 10
    assert r.llen(f"user_{user_id}_messages") == 1
    with pytest.raises(PublishError, match="another request"):
        publish(r, user_id, "something else", idempotency_key="order-1")


# The HTTP API -----------------------------------------------------------------------


@ON_BOTH
def test_the_api_delivers_to_live_clients(both, base_url, user_id):
    status, answer = call(base_url, "POST", "/api/publish", {"user_id": user_id, "data": "hi"})
    assert (status, answer) == (202, {"queued": 1, "online": {user_id: 2}})
    status, answer = call(
        base_url, "POST", "/api/publish", {"user_id": user_id, "data": {"n": 1}}, key=API_KEYS[0]
    )
    assert status == 202  # the old key works during a rotation
    assert received(both, 2) == ["hi", '{"n":1}']


@ON_BOTH
def test_the_api_publishes_to_many_users(base_url, r):
    users = [f"batch{i}" for i in range(50)]
    status, answer = call(base_url, "POST", "/api/publish", {"user_ids": users, "data": "news"})
    assert status == 202
    assert answer == {"queued": 50, "online": {user: 0 for user in users}}
    assert all(r.lrange(f"user_{user}_messages", 0, -1) == ["news"] for user in users)


def test_concurrent_retries_with_one_idempotency_key_queue_one_message(base_url, r, user_id):
    body = {"user_id": user_id, "data": "charged once"}
    headers = {"Idempotency-Key": f"payment-{user_id}"}
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(lambda _: call(base_url, "POST", "/api/publish", body, headers), range(10))
        )
    assert answers == [(202, {"queued": 1, "online": {user_id: 0}})] * 10
    assert r.lrange(f"user_{user_id}_messages", 0, -1) == ["charged once"]
    other = {"user_id": user_id, "data": "a different charge"}
    status, answer = call(base_url, "POST", "/api/publish", other, headers)
    assert (status, answer["error"]) == (422, "idempotency_key_reused")


@ON_BOTH
def test_presence_counts_connections_on_both_workers_and_drops_to_zero(base_url, r, user_id):
    clients = []
    try:
        while len(connection_pids(r, user_id)) < 2 and len(clients) < 16:
            clients += open_concurrently(base_url, user_id, 8)
            opened = len(clients)
            presence = f"{{user_{user_id}_messages}}:presence"
            wait_until(lambda opened=opened, presence=presence: r.zcard(presence) == opened)
        assert len(connection_pids(r, user_id)) == 2, "the connections never spanned both workers"
        status, answer = call(base_url, "GET", f"/api/users/{user_id}/presence")
        assert status == 200
        assert (answer["online"], answer["connections"]) == (True, len(clients))
    finally:
        for client in clients:
            client.close()
    gone = wait_until(
        lambda: (
            (a := call(base_url, "GET", f"/api/users/{user_id}/presence")[1])["connections"] == 0
            and a
        ),
        what="presence to drop to zero",
    )
    assert gone["online"] is False
    assert gone["last_seen"].endswith("+00:00")


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "key", "status", "error"),
    [
        ("POST", "/api/publish", b"{not json", {}, API_KEYS[0], 400, "invalid_json"),
        (
            "POST",
            "/api/publish",
            {"user_id": "a b", "data": 1},
            {},
            API_KEYS[0],
            400,
            "invalid_user_id",
        ),
        ("POST", "/api/publish", {"user_id": "1", "data": 1}, {}, None, 401, "unauthorized"),
        (
            "POST",
            "/api/publish",
            {"user_id": "1", "data": 1},
            {},
            "wrong-key-0123456789",
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/api/publish",
            {"user_id": "1", "data": "x" * 70000},
            {},
            API_KEYS[0],
            413,
            "too_large",
        ),
        (
            "POST",
            "/api/publish",
            b"user_id=1",
            {"Content-Type": "text/plain"},
            API_KEYS[0],
            415,
            "unsupported_media_type",
        ),
        ("POST", "/api/publish", {"user_id": "1"}, {}, API_KEYS[0], 422, "invalid_request"),
        (
            "POST",
            "/api/publish",
            {"user_id": "1", "user_ids": ["2"], "data": 1},
            {},
            API_KEYS[0],
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/publish",
            {"user_ids": [], "data": 1},
            {},
            API_KEYS[0],
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/publish",
            {"user_ids": ["1"] * 1001, "data": 1},
            {},
            API_KEYS[0],
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/publish",
            {"user_id": 1, "data": 1},
            {},
            API_KEYS[0],
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/publish",
            {"user_id": "1", "data": 1},
            {"Idempotency-Key": "x" * 256},
            API_KEYS[0],
            400,
            "invalid_idempotency_key",
        ),
        ("GET", "/api/users/a%20b/presence", None, {}, API_KEYS[0], 400, "invalid_user_id"),
        ("GET", "/api/publish", None, {}, API_KEYS[0], 405, "method_not_allowed"),
    ],
)
def test_every_error_is_json_with_a_stable_code(
    base_url, r, method, path, body, headers, key, status, error
):
    got, answer = call(base_url, method, path, body, headers, key=key)
    assert (got, answer["error"]) == (status, error)
    assert answer["detail"]
    assert keys_of(r, "1", "a b") == []


def test_a_key_over_its_rate_gets_429(redis_server, r):
    app = create_app(
        {
            "PUSH_DEMO": True,
            "REDIS_URL": redis_server.url,
            "PUSH_API_KEY": API_KEYS,
            "PUSH_API_RATE": 3,
        }
    )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {API_KEYS[0]}"}
    # The window is the wall clock's second: start the calls at the top of one, so that
    # all eleven fall in it (calls straddling two seconds get up to 6 through, not 3).
    wait_until(lambda: time.time() % 1 < 0.05, timeout=2, interval=0.002, what="a new second")
    second = int(time.time())
    statuses = [
        client.post("/api/publish", json={"user_id": "1", "data": i}, headers=headers).status_code
        for i in range(10)
    ]
    assert statuses.count(429) >= 5  # at most 3 a second, even across a second's edge
    refused = client.post("/api/publish", json={"user_id": "1", "data": 0}, headers=headers)
    assert int(time.time()) == second, "the calls took over a second: the test proves nothing"
    assert statuses == [202] * 3 + [429] * 7
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.get_json()["error"] == "rate_limited"


def test_without_a_key_the_api_is_off(redis_server):
    client = create_app({"PUSH_DEMO": True, "REDIS_URL": redis_server.url}).test_client()
    assert client.post("/api/publish", json={"user_id": "1", "data": 1}).status_code == 404
    assert client.get("/api/openapi.json").status_code == 404


def test_the_openapi_document_passes_schemathesis(base_url, tmp_path):
    """Generated requests, valid and not: no server error, every answer as documented."""
    result = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "schemathesis"),
            "run",
            f"{base_url}/api/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--header",
            f"Authorization: Bearer {API_KEYS[0]}",
            "--max-examples",
            "40",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "Tested: 4" in result.stdout  # every operation
    assert "No issues found" in result.stdout


# The CLI ----------------------------------------------------------------------------


@pytest.fixture
def cli(backend, request):
    """`flask --app wsgi push ...` against the test's Redis (or cluster)."""
    if backend == "cluster":
        url, settings = (
            request.getfixturevalue("redis_cluster").seed_url,
            {"PUSH_REDIS_CLUSTER": "1"},
        )
    else:
        url, settings = request.getfixturevalue("redis_server").url, {}
    env = service_env(url, PUSH_DEMO="1", **settings)
    return lambda *args, timeout=30: _run_cli(env, args, timeout)


def _run_cli(env, args, timeout):
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "flask"), "--app", "wsgi", "push", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@ON_BOTH
def test_cli_send_delivers_text_and_json(both, cli, user_id):
    result = cli("send", user_id, "from the terminal")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"queued for {user_id}; 2 connection(s) open"
    result = cli("send", user_id, "--json", '{"a": 1}')
    assert result.returncode == 0, result.stderr
    assert received(both, 2) == ["from the terminal", '{"a":1}']


@ON_BOTH
def test_cli_send_refuses_bad_input(cli, r):
    assert "invalid_user_id" in cli("send", "a b", "x").stderr
    assert "not JSON" in cli("send", "1", "--json", "{").stderr
    assert keys_of(r, "1", "a b") == []


@ON_BOTH
def test_cli_tail_prints_what_arrives(cli, r, user_id):
    r.lpush(f"user_{user_id}_messages", "one", "two")
    result = cli("tail", user_id, "--count", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two"]
    # Like a connection, it advanced the delivered mark.
    assert (
        r.hget(user_keys(user_id, "user_{user_id}_messages").state, "delivered_id")
        == (lines[1].split(" ", 1)[0])
    )


@ON_BOTH
def test_cli_stats_for_a_user_and_for_the_busiest(both, cli, r, user_id):
    r.lpush(f"user_{user_id}_messages", b"\xff")
    publish(r, user_id, "ok")
    assert received(both, 1) == ["ok"]
    result = cli("stats", user_id)
    assert result.returncode == 0, result.stderr
    assert "dead letters            1" in result.stdout
    assert "open connections        2" in result.stdout
    result = cli("stats")
    assert f"2  {user_id}" in result.stdout


@ON_BOTH
def test_cli_disconnect_closes_the_users_connections(both, cli, r, user_id):
    """Also on a cluster, where the revocation's wake is sharded to the user's node."""
    stream, ws = both
    result = cli("disconnect", user_id, "--reason", "maintenance")
    assert result.returncode == 0, result.stderr
    assert "2 connection(s) were open" in result.stdout
    event = stream.next_event()
    assert (event.event, json.loads(event.data)) == (
        "revoked",
        {"error": "revoked", "reason": "maintenance"},
    )
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "revoked: maintenance")
    assert "invalid_user_id" in cli("disconnect", "a b").stderr
