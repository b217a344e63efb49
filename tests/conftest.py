"""Fixtures: a real Redis on a free port and the real app under real gunicorn."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, sync_playwright
from servers import Gunicorn, service_env

from push.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
#: Two keys, as during a rotation: both open the publish API.
API_KEYS = ("old-key-0123456789abcdef", "new-key-0123456789abcdef")
#: Screenshots and other files a person may want to look at after a run.
OUTPUT = ROOT / "test-output"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server for the whole run (never the machine's own on 6379)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the test Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def service(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gunicorn]:
    """The app under gunicorn with 2 gevent workers, in demo mode, 1 s heartbeat, the API on."""
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = service_env(
        redis_server.url, PUSH_DEMO="1", PUSH_HEARTBEAT_S="1", PUSH_API_KEY=",".join(API_KEYS)
    )
    server = Gunicorn(log_path, env).start()
    yield server
    server.stop()
    print(f"gunicorn log: {log_path}")


@pytest.fixture
def base_url(service: Gunicorn, r: redis.Redis) -> str:
    return service.base_url


@pytest.fixture
def user_id() -> str:
    """A user of this test alone."""
    return f"u{uuid.uuid4().hex[:12]}"


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    path = OUTPUT / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Flags for a root user on a machine without a display or outside network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (make test installs Debian's where it can)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
