"""Past one process: two gunicorn instances (2 workers each) sharing one Redis, and
again sharing one Redis Cluster; each with the mailbox watcher and with blocking movers.

Every tab of a user receives every message whichever instance it is on, in the same
order; a tab resumes on the other instance; and Redis holds a few connections per worker
whatever the number of users with the watcher, and one blocked connection per online user
(not one per worker the user's tabs are spread over) with blocking movers.
"""

from __future__ import annotations

from collections import Counter

import pytest
import redis
from clients import (
    SseStream,
    connection_pids,
    drainer_pids,
    open_concurrently,
    open_sse,
    redis_clients,
    wait_until,
    ws_frames,
)
from cluster import LocalCluster
from servers import Gunicorn, service_env

from push.storage.server import RedisServer

pytestmark = pytest.mark.e2e

USERS = 12
#: Redis connections a worker may hold besides blocking movers: its pub/sub subscriber, its
#: mailbox watcher's connection and a few pooled connections for short commands
#: (PUSH_REDIS_POOL_SIZE, 8 by default).
PER_WORKER = 11
#: On a 3-primary cluster: the 8 shared out as 3 a primary, a sharded subscriber and a
#: watcher connection on each primary, and the connection the client reads the slot map on.
PER_WORKER_ON_CLUSTER = 3 * 3 + 3 + 3 + 1
#: The issue's bound on a worker's Redis connections with the watcher, for any number of users.
WATCHER_BOUND_PER_WORKER = 20


class Fleet(list):
    """App instances sharing one Redis (or one cluster)."""

    backend = "redis"
    watch = "notify"
    redis_url = ""
    cluster: LocalCluster | None = None


@pytest.fixture(
    scope="module",
    params=[
        ("redis", "notify"),
        ("redis", "block"),
        ("cluster", "notify"),
        ("cluster", "block"),
    ],
    ids=lambda param: "-".join(param),
)
def fleet(request, tmp_path_factory):
    """Two app instances, as two hosts behind a load balancer would run them."""
    backend, watch = request.param
    folder = tmp_path_factory.mktemp("fleet")
    cluster = server = None
    # A Redis (or cluster) of its own: its connections are counted, and only this fleet's
    # may be.
    if backend == "cluster":
        cluster = LocalCluster(folder / "cluster", replicas=False).start()
        url, settings = cluster.seed_url, {"PUSH_REDIS_CLUSTER": "1"}
    else:
        server = RedisServer(folder / "redis").start()
        url, settings = server.url, {}
    env = service_env(
        url, PUSH_DEMO="1", PUSH_HEARTBEAT_S="1", PUSH_MAILBOX_WATCH=watch, **settings
    )
    instances = Fleet(Gunicorn(folder / f"instance{i}.log", env).start() for i in range(2))
    instances.backend = backend
    instances.watch = watch
    instances.cluster = cluster
    instances.redis_url = url
    yield instances
    for instance in instances:
        instance.stop()
    if cluster is not None:
        cluster.stop()
    if server is not None:
        server.stop()


@pytest.fixture
def backend(fleet) -> str:
    return fleet.backend


@pytest.fixture
def watch(fleet) -> str:
    return fleet.watch


@pytest.fixture
def r(fleet, request):
    """A client of the fleet's Redis (or of its own cluster), emptied before each test."""
    if fleet.cluster is None:
        client = redis.Redis.from_url(fleet.redis_url, decode_responses=True)
    else:
        client = fleet.cluster.cluster_client()
    client.flushall()
    yield client
    client.close()


def test_every_tab_on_either_instance_gets_every_message_in_order(fleet, r, user_id):
    clients = [c for instance in fleet for c in open_concurrently(instance.base_url, user_id, 6)]
    try:
        wait_until(lambda: r.zcard(f"{{user_{user_id}_messages}}:presence") == len(clients))
        assert len(connection_pids(r, user_id)) >= 3  # spread over at least three workers
        r.lpush(f"user_{user_id}_messages", *[f"m{i}" for i in range(5)])
        orders = []
        for client in clients:
            if isinstance(client, SseStream):
                events = client.events(5)
                orders.append([(e.id, e.data) for e in events])
            else:
                frames = ws_frames(client, 5)
                orders.append([(f["id"], f["data"]) for f in frames])
        assert all(order == orders[0] for order in orders)
        assert [data for _, data in orders[0]] == [f"m{i}" for i in range(5)]
    finally:
        for client in clients:
            client.close()


def test_a_tab_resumes_on_the_other_instance(fleet, r, user_id):
    first, second = fleet
    with open_sse(first.base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        r.lpush(f"user_{user_id}_messages", "a", "b", "c")
        events = stream.events(3)
    r.lpush(f"user_{user_id}_messages", "d")
    headers = {"Last-Event-ID": events[0].id}
    with open_sse(second.base_url, {"user_id": user_id}, headers) as stream:
        assert [e.data for e in stream.events(3)] == ["b", "c", "d"]


def test_redis_connections_per_worker_and_per_online_user(fleet, r):
    """Watcher: no blocked connection, and a few connections per worker whatever the number
    of users. Blocking movers: one blocked connection per online user."""
    users = [f"counted{i}" for i in range(USERS)]
    clients = []
    try:
        for user in users:
            for instance in fleet:
                clients += open_concurrently(instance.base_url, user, 4)
        wait_until(
            lambda: all(len(connection_pids(r, user)) >= 2 for user in users),
            what="every user on several workers",
        )
        try:
            wait_until(lambda: all(len(drainer_pids(r, user)) == 1 for user in users))
        except AssertionError:
            raise AssertionError(
                f"drainers per user: {[len(drainer_pids(r, user)) for user in users]}"
            ) from None
        connected, blocked, nodes = redis_clients_info(r)
        workers = sum(instance.workers for instance in fleet)
        # This test's own client counts too, once on each node.
        print(f"{fleet.backend}/{fleet.watch}: {connected} Redis connections, {blocked} blocked")
        per_worker = PER_WORKER_ON_CLUSTER if fleet.backend == "cluster" else PER_WORKER
        movers = USERS if fleet.watch == "block" else 0
        assert connected <= movers + per_worker * workers + nodes, (
            connected,
            Counter(client["cmd"] for client in redis_clients(r)),
        )
        assert blocked == movers
        if fleet.watch == "notify":
            assert connected <= WATCHER_BOUND_PER_WORKER * workers + nodes
    finally:
        for client in clients:
            client.close()


def redis_clients_info(r) -> tuple[int, int, int]:
    """(connected clients, blocked clients, nodes) over the Redis or every cluster primary."""
    if isinstance(r, redis.RedisCluster):
        infos = [r.get_redis_connection(node).info("clients") for node in r.get_primaries()]
    else:
        infos = [r.info("clients")]
    connected = sum(info["connected_clients"] for info in infos)
    blocked = sum(info["blocked_clients"] for info in infos)
    return connected, blocked, len(infos)
