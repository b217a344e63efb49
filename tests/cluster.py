"""A real Redis Cluster for the tests: three primaries on free ports, each with a replica."""

from __future__ import annotations

import socket
from pathlib import Path

import redis
from clients import wait_until

from push.storage.server import RedisServer

#: Slot ranges of the three primaries (16384 slots in all).
SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))
#: A primary that stops answering for this long is failed over to its replica.
NODE_TIMEOUT_MS = 1000


def distinct_free_ports(count: int) -> list[int]:
    """`count` free loopback ports, all different: each probe stays bound until all are
    taken (probing one at a time may hand out the same port twice, and a node whose port
    or bus port is taken never joins)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class LocalCluster:
    """`redis-server --cluster-enabled yes` x 6, joined, slots assigned, replicas attached."""

    def __init__(self, data_dir: Path, *, replicas: bool = True) -> None:
        count = 6 if replicas else 3
        ports = distinct_free_ports(2 * count)
        self.bus_ports = ports[count:]
        self.servers = [
            RedisServer(
                Path(data_dir) / f"node{i}",
                port=ports[i],
                extra_args=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    # The bus port defaults to port + 10000, past 65535 for a high free port.
                    "--cluster-port",
                    str(self.bus_ports[i]),
                ),
            )
            for i in range(count)
        ]

    @property
    def seed_url(self) -> str:
        """REDIS_URL for the service: two seed nodes, either is enough."""
        first, second = self.servers[:2]
        return f"redis://127.0.0.1:{first.port},127.0.0.1:{second.port}/0"

    def cluster_client(self) -> redis.RedisCluster:
        """A cluster client, as a producer on a cluster would use."""
        return redis.RedisCluster(
            host="127.0.0.1", port=self.servers[0].port, decode_responses=True, socket_timeout=2
        )

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def start(self) -> LocalCluster:
        for server in self.servers:
            server.start()
        nodes = [self.client(server.port) for server in self.servers]
        for node in nodes[1:]:
            node.execute_command(
                "CLUSTER", "MEET", "127.0.0.1", self.servers[0].port, self.bus_ports[0]
            )
        for node, (first, last) in zip(nodes, SLOT_RANGES, strict=False):
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        wait_until(
            lambda: all(_known_nodes(node) == len(nodes) for node in nodes),
            timeout=30,
            what="every node to know every other",
        )
        for replica, primary in zip(nodes[3:], nodes[:3], strict=False):
            replica.execute_command(
                "CLUSTER", "REPLICATE", primary.execute_command("CLUSTER", "MYID")
            )
        wait_until(self.healthy, timeout=30, what="cluster_state:ok with replicas in sync")
        for node in nodes:
            node.close()
        return self

    def healthy(self) -> bool:
        """Every live node says ok, and every replica is in sync with its primary."""
        for server in self.live():
            node = self.client(server.port)
            try:
                if node.cluster("INFO")["cluster_state"] != "ok":
                    return False
                info = node.info("replication")
                if info["role"] == "slave" and info["master_link_status"] != "up":
                    return False
            finally:
                node.close()
        return True

    def live(self) -> list[RedisServer]:
        return [s for s in self.servers if s.process is not None and s.process.poll() is None]

    def primary_of(self, key: str) -> RedisServer:
        """The server that owns `key`'s slot now."""
        for server in self.live():
            node = self.client(server.port)
            try:
                if node.info("replication")["role"] != "master":
                    continue
                if _owns(node, node.cluster("KEYSLOT", key)):
                    return server
            finally:
                node.close()
        raise AssertionError(f"no live primary owns the slot of {key}")

    def primaries(self) -> list[RedisServer]:
        found = []
        for server in self.live():
            node = self.client(server.port)
            try:
                if node.info("replication")["role"] == "master":
                    found.append(server)
            finally:
                node.close()
        return found

    def migrate_slot(self, key: str, source: RedisServer, target: RedisServer) -> None:
        """Move `key`'s slot, with its keys, from one primary to another (as redis-cli
        --cluster reshard does), then tell every primary who owns it."""
        from_node, to_node = self.client(source.port), self.client(target.port)
        try:
            slot = from_node.cluster("KEYSLOT", key)
            from_id = from_node.execute_command("CLUSTER", "MYID")
            to_id = to_node.execute_command("CLUSTER", "MYID")
            to_node.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", from_id)
            from_node.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", to_id)
            while keys := from_node.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                from_node.execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
                )
            for server in self.primaries():
                node = self.client(server.port)
                try:
                    node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", to_id)
                finally:
                    node.close()
        finally:
            from_node.close()
            to_node.close()
        wait_until(self.healthy, timeout=30, what="the cluster to agree on the slot")

    def replica_of(self, primary: RedisServer) -> RedisServer:
        for server in self.live():
            node = self.client(server.port)
            try:
                info = node.info("replication")
                if info["role"] == "slave" and info["master_port"] == primary.port:
                    return server
            finally:
                node.close()
        raise AssertionError(f"no replica of the node on {primary.port}")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _known_nodes(node: redis.Redis) -> int:
    return int(node.cluster("INFO")["cluster_known_nodes"])


def _owns(node: redis.Redis, slot: int) -> bool:
    myself = node.execute_command("CLUSTER", "MYID")
    for start, end, owner, *_ in node.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return owner[2] == myself
    return False
