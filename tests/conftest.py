"""Fixtures: a real Redis on a free port and the real app under real gunicorn.

`r` and `base_url` follow the `backend` fixture: "redis" (one Redis) unless a
module parametrises it to run on a Redis Cluster too ("cluster": three primaries
with a replica each, and a service with PUSH_REDIS_CLUSTER=1). `base_url` also follows
the `watch` fixture: "notify" (the default PUSH_MAILBOX_WATCH=auto, which picks the
per-worker mailbox watcher on these Redis servers) unless a module parametrises it to run
with blocking movers too ("block").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from cluster import LocalCluster
from playwright.sync_api import Browser, sync_playwright
from servers import Gunicorn, service_env

from push.storage.server import RedisServer
from push.storage.store import Store
from tests.harness.chromium import CHROMIUM, CHROMIUM_ARGS

#: Under CI a skip fails the run (tests/ci_skips.py).
pytest_plugins = ["ci_skips"]

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


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A private Redis Cluster for the whole run, started by the first test that asks."""
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def backend() -> str:
    """The Redis a test runs against; a module parametrises it to run on both."""
    return "redis"


@pytest.fixture
def watch() -> str:
    """How the service learns of mail; a module parametrises it to run in both modes."""
    return "notify"


@pytest.fixture
def r(backend: str, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """A client of the test Redis (or cluster), emptied before each test."""
    if backend == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        client = cluster.cluster_client()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        client = redis.Redis.from_url(server.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    """The service's own view of the test Redis, for doing what a worker does."""
    if backend == "cluster":
        url = request.getfixturevalue("redis_cluster").seed_url
    else:
        url = request.getfixturevalue("redis_server").url
    store = Store(url, pool_size=2, block_s=1, cluster=backend == "cluster")
    yield store
    store.close()


def _start_service(redis_url: str, folder: Path, **settings: str) -> Gunicorn:
    """The app under gunicorn with 2 gevent workers, in demo mode, 1 s heartbeats and
    WebSocket pings (unless `settings` say otherwise), the API on."""
    defaults = {
        "PUSH_DEMO": "1",
        "PUSH_HEARTBEAT_S": "1",
        "PUSH_WS_PING_S": "1",
        "PUSH_API_KEY": ",".join(API_KEYS),
    }
    env = service_env(redis_url, **{**defaults, **settings})
    return Gunicorn(folder / "gunicorn.log", env).start()


@pytest.fixture(scope="session")
def services(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Gunicorn]]:
    """The services of the run, each started on first use and stopped at the end:
    `services(backend, watch, heartbeat_s="1")` on one Redis ("redis") or on the cluster,
    with the mailbox watcher ("notify": the default `auto` on these servers) or with
    blocking movers ("block")."""
    started: dict[tuple[str, str, str], Gunicorn] = {}

    def get(backend: str, watch: str, heartbeat_s: str = "1") -> Gunicorn:
        key = (backend, watch, heartbeat_s)
        if key not in started:
            settings = {"PUSH_HEARTBEAT_S": heartbeat_s}
            if watch != "notify":
                settings["PUSH_MAILBOX_WATCH"] = watch
            elif heartbeat_s != "1":
                settings["PUSH_MAILBOX_WATCH"] = "notify"  # never falls back unnoticed
            if backend == "cluster":
                url = request.getfixturevalue("redis_cluster").seed_url
                settings["PUSH_REDIS_CLUSTER"] = "1"
            else:
                url = request.getfixturevalue("redis_server").url
            folder = tmp_path_factory.mktemp(f"gunicorn-{backend}-{watch}-{heartbeat_s}")
            started[key] = _start_service(url, folder, **settings)
        return started[key]

    yield get
    for server in started.values():
        server.stop()
        print(f"gunicorn log: {server.log_path}")


@pytest.fixture
def service(services: Callable[..., Gunicorn]) -> Gunicorn:
    """The service on one Redis, in its default mailbox watch (auto: the watcher here)."""
    return services("redis", "notify")


@pytest.fixture
def cluster_service(services: Callable[..., Gunicorn]) -> Gunicorn:
    """The same service in cluster mode, seeded with two of the cluster's nodes."""
    return services("cluster", "notify")


@pytest.fixture
def base_url(backend: str, watch: str, r: redis.Redis, services: Callable[..., Gunicorn]) -> str:
    return services(backend, watch).base_url


@pytest.fixture
def quiet_service(backend: str, watch: str, services: Callable[..., Gunicorn]) -> Gunicorn:
    """The service with a 30 s heartbeat: its pumps re-read the history only every 2
    minutes, so a tab learns of a message within seconds only through the mailbox
    watcher, a mover, or a wake."""
    return services(backend, watch, heartbeat_s="30")


@pytest.fixture
def user_id() -> str:
    """A user of this test alone."""
    return f"u{uuid.uuid4().hex[:12]}"


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    path = OUTPUT / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


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
