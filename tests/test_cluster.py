"""Redis Cluster mode beyond the shared delivery tests (test_delivery.py and
test_scaling.py run on a cluster too): wakes are sharded to the owner of the user's
slot, and a replica promoted while messages flow loses nothing.
"""

from __future__ import annotations

import pytest
import redis
from clients import connection_pids, open_concurrently, wait_until
from cluster import LocalCluster
from resuming import ResumingClient, push_until_accepted, sequence_problems
from servers import Gunicorn, service_env

from push.keys import user_keys

pytestmark = pytest.mark.e2e

MAILBOX = "user_{user_id}_messages"


@pytest.fixture
def backend() -> str:
    return "cluster"


def test_wakes_are_sharded_to_the_node_that_owns_the_user(
    cluster_service, redis_cluster, r, user_id
):
    keys = user_keys(user_id, MAILBOX)
    clients = open_concurrently(cluster_service.base_url, user_id, 6)
    try:
        wait_until(lambda: r.zcard(keys.presence) == len(clients))
        workers = len(connection_pids(r, user_id))
        owner = redis_cluster.primary_of(keys.mailbox)
        for server in redis_cluster.live():
            node = redis_cluster.client(server.port)
            try:
                # Nobody listens on a plain channel: a PUBLISH would reach every node.
                assert node.pubsub_numsub(keys.wake) == [(keys.wake, 0)]
                if node.info("replication")["role"] != "master":
                    continue
                shard_subscribers = dict(node.pubsub_shardnumsub(keys.wake))[keys.wake]
                # One subscriber per worker holding a tab of the user, on the owner only.
                expected = workers if server is owner else 0
                wait_until(
                    lambda node=node, expected=expected: (
                        dict(node.pubsub_shardnumsub(keys.wake))[keys.wake] == expected
                    ),
                    what=f"{expected} shard subscribers on {server.port}, not {shard_subscribers}",
                )
            finally:
                node.close()
    finally:
        for client in clients:
            client.close()


def test_delivery_follows_the_users_slot_to_another_node(
    cluster_service, redis_cluster, r, user_id
):
    """The user's slot is migrated while a tab of each kind is open: the blocked mover and
    the wake subscribers move to the new owner, and delivery goes on in order."""
    keys = user_keys(user_id, MAILBOX)
    clients = [ResumingClient(cluster_service.base_url, user_id, t) for t in ("sse", "ws")]
    try:
        for client in clients:
            client.start()
        wait_until(lambda: r.zcard(keys.presence) == 2)
        r.lpush(keys.mailbox, "0", "1")
        for client in clients:
            assert client.wait_for(2, timeout=10)
        source = redis_cluster.primary_of(keys.mailbox)
        target = next(server for server in redis_cluster.primaries() if server is not source)
        redis_cluster.migrate_slot(keys.mailbox, source, target)
        assert redis_cluster.primary_of(keys.mailbox) is target
        for n in range(2, 20):
            r.lpush(keys.mailbox, str(n))
        for client in clients:
            assert client.wait_for(20, timeout=30), (client.transport, client.received)
            assert sequence_problems(client.received, 20) == {"missing": [], "out_of_order": []}
        node = redis_cluster.client(target.port)
        workers = len(connection_pids(r, user_id))
        wait_until(
            lambda: dict(node.pubsub_shardnumsub(keys.wake))[keys.wake] == workers,
            what="the wake subscribers on the new owner",
        )
        node.close()
    finally:
        for client in clients:
            client.stop()


def test_a_replica_promoted_while_messages_flow_loses_nothing(tmp_path):
    """The primary of the user's slot is killed mid-stream; its replica takes over.

    Everything the old primary acknowledged and propagated (WAIT) arrives, and so does
    everything the producer pushes while the replica is being promoted."""
    cluster = LocalCluster(tmp_path / "cluster").start()
    server = Gunicorn(
        tmp_path / "gunicorn.log",
        service_env(cluster.seed_url, PUSH_REDIS_CLUSTER="1", PUSH_DEMO="1", PUSH_HEARTBEAT_S="1"),
    ).start()
    producer = cluster.cluster_client()
    keys = user_keys("promoted", MAILBOX)
    clients = [ResumingClient(server.base_url, "promoted", t) for t in ("sse", "ws")]
    try:
        for client in clients:
            client.start()
        wait_until(lambda: producer.zcard(keys.presence) == 2)
        primary = cluster.primary_of(keys.mailbox)
        replica = cluster.replica_of(primary)
        total = 200
        for n in range(total):
            if n == total // 2:
                # Everything so far is on the replica too; then its primary dies.
                assert redis.Redis(port=primary.port).wait(1, 5000) == 1
                primary.process.kill()
                primary.process.wait()
            push_until_accepted(producer, keys.mailbox, str(n))
        assert cluster.primary_of(keys.mailbox) is replica
        for client in clients:
            assert client.wait_for(total, timeout=60), (client.transport, len(client.received))
            assert sequence_problems(client.received, total) == {
                "missing": [],
                "out_of_order": [],
            }
    finally:
        for client in clients:
            client.stop()
        server.stop()
        producer.close()
        cluster.stop()


def test_a_cluster_that_does_not_answer_yet_is_redis_away_not_a_crash():
    """The app is made without reaching the cluster (gunicorn --check-config, a start
    before Redis); until a seed answers, readiness says why."""
    from push import create_app
    from push.redis_server import free_port

    app = create_app(
        {
            "PUSH_DEMO": True,
            "PUSH_REDIS_CLUSTER": True,
            "REDIS_URL": f"redis://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/0",
        }
    )
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    assert "no cluster seed answered" in answer.get_json()["redis"]
