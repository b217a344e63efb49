"""Redis Cluster mode beyond the shared delivery tests (test_delivery.py and
test_scaling.py run on a cluster too): wakes are sharded to the owner of the user's
slot and follow it when it migrates, and a replica promoted while messages flow loses
nothing.
"""

from __future__ import annotations

import pytest
import redis
from clients import connection_pids, open_on_both_workers, tabs_receive, wait_until
from cluster import LocalCluster
from resuming import ResumingClient, assert_every_client_got_all_in_order, push_until_accepted
from servers import Gunicorn, service_env

from push.model.keys import user_keys

pytestmark = pytest.mark.e2e

MAILBOX = "user_{user_id}_messages"
#: Seconds a message may take to reach every tab through a wake.
WAKE_DEADLINE_S = 5.0


@pytest.fixture
def backend() -> str:
    return "cluster"


@pytest.fixture(params=["notify", "block"])
def watch(request: pytest.FixtureRequest) -> str:
    """Every test here runs with the mailbox watcher and again with blocking movers."""
    return request.param


def every_tab_gets(clients: list, payloads: list[str]) -> None:
    """Each tab receives `payloads` within 5 s: well before a 30 s heartbeat re-check."""
    tabs_receive(clients, payloads, WAKE_DEADLINE_S)


def shard_subscribers(cluster: LocalCluster, server, channel: str) -> int:
    node = cluster.client(server.port)
    try:
        return dict(node.pubsub_shardnumsub(channel))[channel]
    finally:
        node.close()


def test_wakes_are_sharded_to_the_node_that_owns_the_user(quiet_service, redis_cluster, r, user_id):
    keys = user_keys(user_id, MAILBOX)
    clients = open_on_both_workers(quiet_service.base_url, r, user_id)
    try:
        owner = redis_cluster.primary_of(keys.mailbox)
        for server in redis_cluster.live():
            node = redis_cluster.client(server.port)
            # Nobody listens on a plain channel: a PUBLISH would reach every node.
            assert node.pubsub_numsub(keys.wake) == [(keys.wake, 0)]
            node.close()
        for server in redis_cluster.primaries():
            # One subscriber per worker holding a tab of the user, on the owner only.
            expected = 2 if server is owner else 0
            wait_until(
                lambda server=server, expected=expected: (
                    shard_subscribers(redis_cluster, server, keys.wake) == expected
                ),
                what=f"{expected} shard subscribers on {server.port}",
            )
        r.lpush(keys.mailbox, "one", "two")
        every_tab_gets(clients, ["one", "two"])
    finally:
        for client in clients:
            client.close()
    # The last tab gone, each worker unsubscribes.
    wait_until(
        lambda: shard_subscribers(redis_cluster, owner, keys.wake) == 0,
        what="the wake channel to be left",
    )


def history_reads(cluster: LocalCluster) -> int:
    """XRANGE calls so far on every primary (history reads; scripts do not use it here)."""
    total = 0
    for server in cluster.primaries():
        node = cluster.client(server.port)
        try:
            total += node.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0)
        finally:
            node.close()
    return total


def test_a_small_message_reaches_the_other_worker_in_its_wake(
    quiet_service, redis_cluster, r, user_id
):
    """A drain's wake carries a small batch: the worker that does not move the user's
    mail hands it to its tabs without reading the history back."""
    keys = user_keys(user_id, MAILBOX)
    clients = open_on_both_workers(quiet_service.base_url, r, user_id)
    try:
        r.lpush(keys.mailbox, "warm up")
        every_tab_gets(clients, ["warm up"])
        before = history_reads(redis_cluster)
        payloads = [f"light {n}" for n in range(20)]
        for payload in payloads:
            r.lpush(keys.mailbox, payload)
            every_tab_gets(clients, [payload])
        # One read a message (at least) if the wake only said "look".
        assert history_reads(redis_cluster) - before < len(payloads) // 2
    finally:
        for client in clients:
            client.close()


def test_delivery_follows_the_users_slot_to_another_node(quiet_service, redis_cluster, r, user_id):
    """The user's slot is migrated while tabs are open on both workers: the blocked mover
    and the wake subscribers move to the new owner, and wakes keep coming."""
    keys = user_keys(user_id, MAILBOX)
    clients = open_on_both_workers(quiet_service.base_url, r, user_id)
    try:
        r.lpush(keys.mailbox, "before")
        every_tab_gets(clients, ["before"])
        source = redis_cluster.primary_of(keys.mailbox)
        target = next(server for server in redis_cluster.primaries() if server is not source)
        redis_cluster.migrate_slot(keys.mailbox, source, target)
        assert redis_cluster.primary_of(keys.mailbox) is target
        wait_until(
            lambda: shard_subscribers(redis_cluster, target, keys.wake) == 2,
            what="both workers' wake subscribers on the new owner",
        )
        payloads = [f"after {n}" for n in range(5)]
        r.lpush(keys.mailbox, *payloads)
        every_tab_gets(clients, payloads)
    finally:
        for client in clients:
            client.close()


def test_a_replica_promoted_while_messages_flow_loses_nothing(tmp_path, watch):
    """The primary of the user's slot is killed mid-stream; its replica takes over.

    Everything the old primary acknowledged and propagated (WAIT) arrives, and so does
    everything the producer pushes while the replica is being promoted."""
    cluster = LocalCluster(tmp_path / "cluster").start()
    server = Gunicorn(
        tmp_path / "gunicorn.log",
        service_env(
            cluster.seed_url,
            PUSH_REDIS_CLUSTER="1",
            PUSH_DEMO="1",
            PUSH_HEARTBEAT_S="1",
            PUSH_MAILBOX_WATCH=watch,
        ),
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
        workers = len(connection_pids(producer, "promoted"))
        wait_until(
            lambda: shard_subscribers(cluster, replica, keys.wake) == workers,
            what="the wake subscribers on the promoted replica",
        )
        assert_every_client_got_all_in_order(clients, total)
    finally:
        for client in clients:
            client.stop()
        server.stop()
        producer.close()
        cluster.stop()


def test_a_cluster_that_does_not_answer_yet_is_redis_away_not_a_crash():
    """The app is made without reaching the cluster (gunicorn --check-config, a start
    before Redis); until a seed answers, readiness says why."""
    from push.service import create_app
    from push.storage.server import free_port

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
