"""Starting the service: gunicorn's config check, refusals that name the setting, and
`python app.py` (what `make run` runs) bringing up its own Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest
import redis
from clients import keys_of, open_sse, open_ws, wait_until, ws_frames
from servers import ROOT, Gunicorn, service_env

from push.service import create_app
from push.storage.server import free_port

SECRET = "a-secret-of-at-least-32-bytes-for-tests"


def check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--check-config", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_without_an_api_key_start_up_says_the_api_is_off_once(redis_server, tmp_path):
    server = Gunicorn(tmp_path / "log", service_env(redis_server.url, PUSH_DEMO="1")).start()
    server.stop()
    assert server.log().count("publish API is off") == 1


def test_gunicorn_accepts_the_config_and_imports_the_app_without_connecting():
    # Port 9 (discard) has no Redis: importing the app must not try to reach it.
    result = check_config(service_env("redis://127.0.0.1:9/0", PUSH_JWT_SECRET=SECRET))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PUSH_HEARTBEAT_S", "often"),
        ("PUSH_MAILBOX_KEY", "no_placeholder"),
        ("REDIS_URL", "x"),
        ("PUSH_JWT_SECRET", ""),
        ("PUSH_JWT_SECRET", "too short"),
        ("PUSH_ALLOWED_ORIGINS", "*"),
    ],
)
def test_a_wrong_setting_stops_start_up_and_is_named(variable, value):
    env = service_env("redis://127.0.0.1:9/0", PUSH_JWT_SECRET=SECRET)
    env[variable] = value
    result = check_config(env)
    assert result.returncode != 0
    assert variable in result.stderr


def test_demo_routes_do_not_exist_outside_demo_mode():
    client = create_app(
        {"PUSH_DEMO": False, "PUSH_JWT_SECRET": SECRET, "REDIS_URL": "redis://127.0.0.1:9/0"}
    ).test_client()
    for method, path in [("get", "/"), ("post", "/demo/send")]:
        response = getattr(client, method)(path)
        assert response.status_code == 404
        assert response.get_json()["error"] == "not_found"


def test_outside_demo_mode_a_user_id_alone_gets_no_stream():
    """Refused before Redis is asked anything (this app's Redis URL leads nowhere)."""
    client = create_app(
        {"PUSH_DEMO": False, "PUSH_JWT_SECRET": SECRET, "REDIS_URL": "redis://127.0.0.1:9/0"}
    ).test_client()
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    for path, headers in [("/stream?user_id=42", {}), ("/ws?user_id=42", upgrade)]:
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"] == "missing_token"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ("not json", 400, "invalid_json"),
        (json.dumps({"user_id": "a b", "data": "x"}), 400, "invalid_user_id"),
        (json.dumps({"user_id": "42", "data": 5}), 422, "invalid_data"),
        (json.dumps({"user_id": "42", "data": "x" * 70_000}), 413, "too_large"),
    ],
)
def test_the_send_box_endpoint_refuses_bad_input(base_url, r, body, status, error):
    request = urllib.request.Request(
        base_url + "/demo/send",
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == status
    assert json.loads(refused.value.read())["error"] == error
    assert keys_of(r, "42", "a b") == []


@pytest.mark.e2e
def test_app_py_starts_a_private_redis_and_serves_the_demo(tmp_path):
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("PUSH_")}
    env.update(
        PORT=str(port),
        PUSH_DEV_REDIS_PORT=str(redis_port),
        PUSH_DEV_REDIS_DIR=str(tmp_path / "redis"),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: "Send a message to user 42" in log.read_text(),
            timeout=30,
            what="app.py to print how to send",
        )
        printed = log.read_text()
        send = f"REDIS_URL=redis://127.0.0.1:{redis_port}/0 PUSH_DEMO=1 .venv/bin/flask --app wsgi"
        assert f"{send} push send 42 hello" in printed
        assert f"http://127.0.0.1:{port}/" in printed
        with urllib.request.urlopen(base_url + "/", timeout=10) as page:
            assert b"push" in page.read()
        producer = redis.Redis(port=redis_port)
        with (
            open_sse(base_url, {"user_id": "42"}) as stream,
            open_ws(base_url, {"user_id": "42"}) as ws,
        ):
            stream.wait_for_comment("connected")
            producer.lpush("user_42_messages", "hello")
            assert stream.next_event().data == "hello"
            assert ws_frames(ws, 1)[0]["data"] == "hello"
        assert (tmp_path / "redis").is_dir()
        producer.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
    # The private Redis goes away with the app.
    wait_until(lambda: _refused(redis_port), timeout=10, what="the private redis to stop")


def _refused(port: int) -> bool:
    """No Redis answers on `port` (another process may have taken the freed port)."""
    try:
        redis.Redis(port=port, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return True
    return False
