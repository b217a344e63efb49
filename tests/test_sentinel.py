"""A Sentinel-managed Redis: REDIS_URL=redis+sentinel://..., through a SENTINEL FAILOVER."""

from __future__ import annotations

import subprocess

import pytest
import redis
from clients import wait_until
from redis.sentinel import Sentinel
from resuming import ResumingClient, assert_every_client_got_all_in_order, push_until_accepted
from servers import Gunicorn, service_env

from push.storage.server import RedisServer, find_server_binary, free_port

pytestmark = pytest.mark.e2e

SERVICE = "pushprimary"


@pytest.fixture
def sentinel_group(tmp_path):
    """One primary, one replica, one sentinel watching them."""
    primary = RedisServer(tmp_path / "primary", appendonly=True).start()
    replica = RedisServer(
        tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(primary.port))
    ).start()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 10000\n"
    )
    sentinel = subprocess.Popen(
        [find_server_binary(), str(conf), "--sentinel"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        wait_until(lambda: _answers(client), what="the sentinel")
        wait_until(
            lambda: (
                redis.Redis(port=replica.port).info("replication")["master_link_status"] == "up"
            ),
            what="the replica to sync",
        )
        wait_until(
            lambda: client.execute_command("SENTINEL", "REPLICAS", SERVICE),
            what="the sentinel to see the replica",
        )
        yield primary, replica, port
    finally:
        sentinel.terminate()
        sentinel.wait(timeout=10)
        replica.stop()
        primary.stop()


def _answers(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def test_delivery_survives_a_sentinel_failover(sentinel_group, tmp_path):
    primary, replica, sentinel_port = sentinel_group
    url = f"redis+sentinel://127.0.0.1:{sentinel_port}/{SERVICE}/0"
    server = Gunicorn(
        tmp_path / "gunicorn.log", service_env(url, PUSH_DEMO="1", PUSH_HEARTBEAT_S="1")
    ).start()
    sentinels = Sentinel([("127.0.0.1", sentinel_port)], socket_timeout=1)
    producer = sentinels.master_for(SERVICE, socket_timeout=2)
    clients = [ResumingClient(server.base_url, "failover", t) for t in ("sse", "ws")]
    try:
        for client in clients:
            client.start()
        wait_until(lambda: producer.zcard("{user_failover_messages}:presence") == 2)
        total = 200
        for n in range(total):
            if n == total // 2:
                # Everything so far is on the replica too; then the replica is promoted.
                assert redis.Redis(port=primary.port).wait(1, 5000) == 1
                redis.Redis(port=sentinel_port).execute_command("SENTINEL", "FAILOVER", SERVICE)
                wait_until(
                    lambda: sentinels.discover_master(SERVICE)[1] == replica.port,
                    timeout=30,
                    what="the replica to be promoted",
                )
            push_until_accepted(producer, "user_failover_messages", str(n))
        assert_every_client_got_all_in_order(clients, total)
    finally:
        for client in clients:
            client.stop()
        server.stop()
