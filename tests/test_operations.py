"""Running it like a production service: metrics, readiness, Redis outages, restarts.

Each test here gets its own Redis (with an append-only file) and its own gunicorn,
because each one stops, kills or restarts something.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from clients import connection_pids, drainer_pids, open_sse, open_ws, wait_until, ws_frames
from prometheus_client.parser import text_string_to_metric_families
from resuming import ResumingClient, assert_behaved, sequence_problems
from servers import ROOT, Gunicorn, service_env
from websockets.exceptions import ConnectionClosed, InvalidStatus

from push.service import create_app
from push.storage.server import RedisServer, free_port
from tests.harness.redis_servers import start_redis

pytestmark = pytest.mark.e2e

METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
def own_redis(tmp_path):
    server = start_redis(tmp_path / "redis", appendfsync="always")
    yield server
    server.stop()


@pytest.fixture
def own_service(own_redis, tmp_path):
    env = service_env(
        own_redis.url,
        PUSH_DEMO="1",
        PUSH_HEARTBEAT_S="1",
        PUSH_METRICS_TOKEN=METRICS_TOKEN,
        PUSH_RECONNECT_SPREAD_S="1",
    )
    server = Gunicorn(tmp_path / "gunicorn.log", env).start()
    yield server
    server.stop()


def restart_redis(server: RedisServer, how: str) -> None:
    """Stop Redis (SHUTDOWN, which writes its AOF, or SIGKILL) and start it again."""
    client = redis.Redis(port=server.port)
    if how == "shutdown":
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown()
    else:
        server.process.kill()
    server.process.wait(timeout=10)
    server.start()


def get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def metrics(url: str) -> dict[tuple[str, tuple], float]:
    status, body = get(url, "/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200
    values = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def metric(values, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_follow_a_known_sequence_summed_over_both_workers(own_service, own_redis):
    url = own_service.base_url
    r = redis.Redis.from_url(own_redis.url, decode_responses=True)
    assert get(url, "/metrics")[0] == 401  # PUSH_METRICS_TOKEN protects it
    streams, sockets = [], []
    try:
        # Users until both workers hold some: the figures must be summed over both.
        for i in range(12):
            streams.append(open_sse(url, {"user_id": f"m{i}"}))
            streams[-1].wait_for_comment("connected")
            sockets.append(open_ws(url, {"user_id": f"w{i}"}))
            wait_until(lambda i=i: drainer_pids(r, f"w{i}"))
            pids = set().union(*(drainer_pids(r, f"m{j}") for j in range(i + 1)))
            if len(pids) == 2:
                break
        assert len(pids) == 2
        n = len(streams)
        get(url, "/stream?user_id=a%20b")  # one refusal
        for i in range(n):
            r.lpush(f"user_m{i}_messages", "one", "two")
            r.lpush(f"user_w{i}_messages", "one", b"\xff")  # and a dead letter each
        for stream in streams:
            assert [event.data for event in stream.events(2)] == ["one", "two"]
        for sock in sockets:
            assert ws_frames(sock, 1)[0]["data"] == "one"
        # The delivery path's counters reach the shared metrics within a second (tally.py).
        values = wait_until(
            lambda: (
                (v := metrics(url))
                and metric(v, "push_messages_delivered_total", transport="ws") == n
                and metric(v, "push_messages_delivered_total", transport="sse") == 2 * n
                and metric(v, "push_messages_moved_total") == 3 * n
                and v
            ),
            what="the delivered counters",
        )
        assert metric(values, "push_open_connections", transport="sse") == n
        assert metric(values, "push_open_connections", transport="ws") == n
        assert metric(values, "push_active_users") == 2 * n
        assert metric(values, "push_connections_total", transport="sse", result="accepted") == n
        assert metric(values, "push_connections_total", transport="ws", result="accepted") == n
        assert (
            metric(values, "push_connections_total", transport="sse", result="rejected_request")
            == 1
        )
        assert metric(values, "push_messages_delivered_total", transport="sse") == 2 * n
        assert metric(values, "push_messages_moved_total") == 3 * n
        assert metric(values, "push_dead_letters_total") == n
        assert metric(values, "push_delivery_seconds_count") >= 2 * n
    finally:
        for client in streams + sockets:
            client.close()
    wait_until(
        lambda: (
            (v := metrics(url))
            and metric(v, "push_active_users") == 0
            and metric(v, "push_open_connections", transport="sse") == 0
            and metric(v, "push_open_connections", transport="ws") == 0
        ),
        what="every connection and user to be released",
    )
    r.close()


def test_readiness_follows_redis(own_service, own_redis):
    url = own_service.base_url
    assert get(url, "/healthz") == (200, b'{"status":"ok"}\n')
    status, body = get(url, "/readyz")
    assert (status, json.loads(body)["redis"]) == (200, "ok")
    own_redis.process.terminate()
    own_redis.process.wait(timeout=10)
    status, body = wait_until(lambda: (a := get(url, "/readyz"))[0] == 503 and a)
    assert json.loads(body)["redis"].startswith("unavailable")
    assert get(url, "/healthz")[0] == 200
    # While Redis is away: a new SSE request gets 200, retry and a close; a WebSocket 503.
    with open_sse(url, {"user_id": "during"}) as stream:
        assert stream.status == 200
        body = stream.read_to_end().decode()
        assert body.startswith("retry: ") and "redis is unavailable" in body
    with pytest.raises(InvalidStatus) as refused:
        open_ws(url, {"user_id": "during"})
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["Retry-After"] == "2"
    own_redis.start()
    wait_until(lambda: get(url, "/readyz")[0] == 200, what="readiness to come back")


@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
def test_a_redis_restart_mid_stream_loses_nothing(own_service, own_redis, how):
    url = own_service.base_url
    producer = redis.Redis.from_url(own_redis.url)
    clients = [ResumingClient(url, "steady", t) for t in ("sse", "ws")]
    for client in clients:
        client.start()
    # Both clients registered and served once, so each worker's connections exist.
    wait_until(lambda: producer.zcard("{user_steady_messages}:presence") == 2)
    producer.lpush("user_steady_messages", "0")
    for client in clients:
        assert client.wait_for(1, timeout=10)
    baseline = len(producer.client_list())
    total = 300
    for n in range(1, total):
        if n == total // 2:
            # From this thread: a server started from a thread would die with it.
            restart_redis(own_redis, how)
        producer.lpush("user_steady_messages", str(n))
    for client in clients:
        assert client.wait_for(total, timeout=60), (client.transport, len(client.received))
        assert sequence_problems(client.received, total) == {"missing": [], "out_of_order": []}
        # A new WebSocket while Redis is away gets 503 (README): the one refusal expected.
        assert_behaved(client, refusals=frozenset({503}))
    # No connection leaked: one mover, and no more connections than before the restart
    # (pools reconnect lazily, so there may be fewer).
    try:
        wait_until(
            lambda: (
                len(producer.client_list()) <= baseline
                and len(drainer_pids(producer, "steady")) == 1
            )
        )
    except AssertionError:
        names = [(c["name"], c["cmd"]) for c in producer.client_list()]
        raise AssertionError(f"redis clients did not settle at {baseline}: {names}") from None
    for client in clients:
        client.stop()
    producer.close()


def test_sigterm_sends_1012_and_sse_clients_resume_with_nothing_lost(own_redis, tmp_path):
    env = service_env(
        own_redis.url, PUSH_DEMO="1", PUSH_HEARTBEAT_S="1", PUSH_RECONNECT_SPREAD_S="1"
    )
    first = Gunicorn(tmp_path / "first.log", env).start()
    producer = redis.Redis.from_url(own_redis.url)
    with (
        open_ws(first.base_url, {"user_id": "restart"}) as ws,
        open_sse(first.base_url, {"user_id": "restart"}) as stream,
    ):
        stream.wait_for_comment("connected")
        wait_until(lambda: drainer_pids(producer, "restart"))
        producer.lpush("user_restart_messages", "0", "1")
        assert [e.data for e in stream.events(2)] == ["0", "1"]
        assert [f["data"] for f in ws_frames(ws, 2)] == ["0", "1"]
        started = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1012, "service restart")
        with pytest.raises(ConnectionError):
            stream.next_event()
        assert "service restart; reconnect after the retry delay" in stream.comments
        assert 100 <= stream.retry <= 1000  # spread over PUSH_RECONNECT_SPREAD_S
        last_id = stream.last_event_id
    first.process.wait(timeout=15)
    assert time.monotonic() - started < 10  # well within the graceful timeout
    producer.lpush("user_restart_messages", "2", "3")  # while no server runs
    second = Gunicorn(tmp_path / "second.log", env).start()
    try:
        with open_sse(second.base_url, {"user_id": "restart"}, {"Last-Event-ID": last_id}) as s:
            assert [e.data for e in s.events(2)] == ["2", "3"]
    finally:
        second.stop()
        producer.close()


def test_a_draining_worker_turns_new_streams_away_politely(redis_server):
    """What a request that reaches a worker after SIGTERM (over a kept-alive connection) gets."""
    app = create_app({"PUSH_DEMO": True, "REDIS_URL": redis_server.url})
    app.extensions["push"].switchboard.draining = True
    client = app.test_client()
    answer = client.get("/stream?user_id=late")
    assert answer.status_code == 200
    assert answer.mimetype == "text/event-stream"
    body = answer.get_data(as_text=True)
    assert body.startswith("retry: ") and ": this worker is shutting down" in body
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    refused = client.get("/ws?user_id=late", headers=upgrade)
    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "2")
    assert refused.get_json()["error"] == "unavailable"
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_every_json_endpoint_answers_redis_being_away_the_same_way():
    """One answer for "Redis did not answer" (push/edge/errors.py): 503, the code
    `unavailable`, `Retry-After`; the streams keep their own (200 + retry:, a WebSocket 503)."""
    api_key = "k" * 32
    app = create_app(
        {
            "PUSH_DEMO": True,
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "PUSH_API_KEY": (api_key,),
            "PUSH_API_RATE": 100,
        }
    )
    client = app.test_client()
    api = {"Authorization": f"Bearer {api_key}"}
    answers = {
        "publish": client.post("/api/publish", json={"user_id": "7", "data": "x"}, headers=api),
        "receipts": client.get("/api/users/7/receipts", headers=api),
        "ack": client.post("/ack?user_id=7", json={"id": "1-0"}),
        "demo send": client.post("/demo/send", json={"user_id": "7", "data": "x"}),
    }
    for name, answer in answers.items():
        assert (name, answer.status_code, answer.headers.get("Retry-After")) == (name, 503, "2")
        assert answer.get_json()["error"] == "unavailable", name
    stream = client.get("/stream?user_id=7")
    assert stream.status_code == 200
    assert stream.get_data(as_text=True).startswith("retry: ")


def test_sigkill_of_a_worker_loses_nothing(own_service, own_redis):
    url = own_service.base_url
    producer = redis.Redis.from_url(own_redis.url, decode_responses=True)
    clients = [ResumingClient(url, "victim", t) for t in ("sse", "ws")]
    for client in clients:
        client.start()
    wait_until(lambda: drainer_pids(producer, "victim"))
    total = 200
    for n in range(total):
        producer.lpush("user_victim_messages", str(n))
        if n == 80:
            for pid in drainer_pids(producer, "victim"):
                os.kill(int(pid), signal.SIGKILL)
    for client in clients:
        assert client.wait_for(total, timeout=60), (client.transport, len(client.received))
        assert sequence_problems(client.received, total) == {"missing": [], "out_of_order": []}
        assert_behaved(client)  # the other worker took them: nothing refused, nothing twice
        client.stop()
    producer.close()


def test_the_deploy_files_exist_and_name_the_service():
    # The folder first: checked after reading from it, it could never fail.
    assert Path(ROOT / "deploy").is_dir()
    for name in ("nginx.conf", "push-proxy-headers.conf", "push.service"):
        assert (ROOT / "deploy" / name).is_file(), f"deploy/{name} is missing"
    assert "proxy_buffering off" in (ROOT / "deploy" / "nginx.conf").read_text()
    assert "X-Forwarded-Host" in (ROOT / "deploy" / "push-proxy-headers.conf").read_text()
    unit = (ROOT / "deploy" / "push.service").read_text()
    assert "gunicorn -c gunicorn.conf.py wsgi:app" in unit
    assert "LimitNOFILE" in unit


def test_every_location_of_the_nginx_recipe_sets_the_proxy_headers():
    """nginx passes a server's proxy_set_header lines only to locations that set none, so
    each location that proxies must include the headers itself (tests/test_nginx.py runs
    the recipe; this holds where nginx is not installed)."""
    recipe = (ROOT / "deploy" / "nginx.conf").read_text()
    locations = re.findall(r"location [^{]*\{([^}]*)\}", recipe)
    proxied = [body for body in locations if "proxy_pass" in body]
    assert len(proxied) >= 4
    for body in proxied:
        assert "include snippets/push-proxy-headers.conf;" in body, body


@pytest.mark.parametrize(("proxies", "status"), [(0, 403), (1, 200)])
def test_forwarded_headers_count_only_behind_trusted_proxies(redis_server, proxies, status):
    """Behind nginx the page's origin is the public host, which only X-Forwarded-Host tells."""
    app = create_app(
        {"PUSH_DEMO": True, "REDIS_URL": redis_server.url, "PUSH_TRUSTED_PROXIES": proxies}
    )
    headers = {
        "Origin": "https://push.example.com",
        "X-Forwarded-Host": "push.example.com",
        "X-Forwarded-Proto": "https",
    }
    answer = app.test_client().post("/ticket?user_id=42", headers=headers)
    assert answer.status_code == status


def test_json_logs_are_one_object_a_line(redis_server, tmp_path):
    env = service_env(redis_server.url, PUSH_DEMO="1", PUSH_LOG_FORMAT="json")
    server = Gunicorn(tmp_path / "log", env, workers=1).start()
    try:
        with open_sse(server.base_url, {"user_id": "json-logged", "token": "secret-value"}) as s:
            assert s.status == 401  # a token without PUSH_JWT_SECRET: refused, and not logged
        with open_sse(server.base_url, {"user_id": "json-logged"}) as stream:
            stream.wait_for_comment("connected")
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines if line["logger"].startswith("push")]
    assert any(m.startswith("connection opened user=json-logged") for m in messages)
    assert any(m.startswith("connection closed user=json-logged") for m in messages)
    assert all({"time", "level", "logger", "pid", "message"} <= set(line) for line in lines)
    assert "secret-value" not in server.log()


def test_a_dead_workers_connections_stop_counting_within_a_lease(own_redis, tmp_path):
    """The presence registry's leases expire with their worker (PUSH_PRESENCE_LEASE_S)."""
    env = service_env(own_redis.url, PUSH_DEMO="1", PUSH_PRESENCE_LEASE_S="2")
    server = Gunicorn(tmp_path / "log", env, workers=1).start()
    r = redis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        stream = open_sse(server.base_url, {"user_id": "counted"})
        stream.wait_for_comment("connected")
        (pid,) = connection_pids(r, "counted")
        os.kill(int(pid), signal.SIGKILL)  # no chance to say goodbye
        wait_until(
            lambda: (
                r.zcount("{user_counted_messages}:presence", "(" + str(_now_ms(r)), "+inf") == 0
            ),
            timeout=10,
            what="the dead worker's lease to expire",
        )
        stream.close()
    finally:
        server.stop()
        r.close()


def _now_ms(r) -> int:
    seconds, micros = r.time()
    return seconds * 1000 + micros // 1000
