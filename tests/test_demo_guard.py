"""Demo mode is for a developer's machine: refused on an address other hosts can reach and
beside a JWT secret unless PUSH_DEMO_FORCE=1, and said in a warning whenever it is on."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from clients import wait_until
from servers import ROOT, Gunicorn, service_env

from push.model.settings import ConfigError, load_config
from push.storage.server import free_port

SECRET = "a-secret-of-at-least-32-bytes-for-tests"
WARNING = "WARNING push.demo: demo mode is on (PUSH_DEMO=1"


def gunicorn_conf():
    spec = importlib.util.spec_from_file_location("push_gunicorn_conf", ROOT / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1:8000", True),
        ("127.0.0.2:8000", True),
        ("[::1]:8000", True),
        ("localhost:8000", True),
        ("unix:/run/push.sock", True),
        ("0.0.0.0:8000", False),
        ("[::]:8000", False),
        (":8000", False),
        ("192.0.2.7:8000", False),
        ("fd://3", False),
        ("no-such-host.invalid:8000", False),
    ],
)
def test_which_binds_count_as_this_host_only(bind, loopback):
    from gunicorn.util import parse_address

    assert gunicorn_conf()._is_loopback(parse_address(bind)) is loopback


@pytest.mark.e2e
def test_gunicorn_refuses_demo_mode_on_a_public_bind_and_names_the_setting(redis_server):
    env = service_env(redis_server.url, PUSH_DEMO="1")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"),
            *("-b", f"0.0.0.0:{free_port()}", "-w", "1", "wsgi:app"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1, result.stderr
    assert "refusing demo mode (PUSH_DEMO=1) on 0.0.0.0:" in result.stderr
    assert "PUSH_DEMO_FORCE=1" in result.stderr
    assert "Booting worker" not in result.stderr  # refused before any worker started


@pytest.mark.e2e
def test_forced_demo_mode_starts_on_a_public_bind_and_warns(redis_server, tmp_path):
    env = service_env(redis_server.url, PUSH_DEMO="1", PUSH_DEMO_FORCE="1")
    public = ["-b", f"0.0.0.0:{free_port()}"]
    server = Gunicorn(tmp_path / "log", env, workers=1, extra_args=public).start()
    server.stop()
    assert f"{WARNING}, forced by PUSH_DEMO_FORCE=1)" in server.log()


@pytest.mark.e2e
def test_demo_mode_on_loopback_starts_and_warns(redis_server, tmp_path):
    server = Gunicorn(tmp_path / "log", service_env(redis_server.url, PUSH_DEMO="1")).start()
    server.stop()
    assert server.log().count(f"{WARNING}):") == 2  # one line per worker


def test_demo_mode_beside_a_jwt_secret_is_refused_unless_forced():
    with pytest.raises(ConfigError, match="PUSH_DEMO_FORCE"):
        load_config({"PUSH_DEMO": "1", "PUSH_JWT_SECRET": SECRET})
    forced = load_config({"PUSH_DEMO": "1", "PUSH_JWT_SECRET": SECRET, "PUSH_DEMO_FORCE": "1"})
    assert forced["PUSH_DEMO"] and forced["PUSH_DEMO_FORCE"]
    assert load_config({"PUSH_DEMO": "1"})["PUSH_DEMO_FORCE"] is False


def test_gunicorn_check_config_refuses_demo_mode_beside_a_jwt_secret():
    env = service_env("redis://127.0.0.1:9/0", PUSH_DEMO="1", PUSH_JWT_SECRET=SECRET)
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--check-config", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "PUSH_DEMO_FORCE" in result.stderr


@pytest.mark.e2e
def test_make_run_serves_demo_mode_on_loopback_with_the_warning(tmp_path):
    """`python app.py` (what `make run` runs) binds 127.0.0.1, so it needs no force."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("PUSH_")}
    env.update(
        PORT=str(free_port()),
        PUSH_DEV_REDIS_PORT=str(free_port()),
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
    try:
        wait_until(
            lambda: "Send a message to user 42" in log.read_text(),
            timeout=30,
            what="app.py to print how to send",
        )
        assert f"{WARNING}):" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)
