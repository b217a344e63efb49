"""Wake subscribers: how a worker hears that a user's history grew, on any Redis.

A wake is a message on the user's channel `{mailbox}:wake`: PUBLISH on a single
Redis or Sentinel, SPUBLISH on a cluster, where a sharded channel lives on the
node that owns the mailbox's slot and is heard only there. Both subscribers offer
the same calls to the hub: subscribe, unsubscribe, resubscribe everything after a
failure, and get the next wake as `(channel, data)`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

import gevent
import redis
from gevent.queue import Empty, Queue
from redis.cluster import RedisCluster
from redis.crc import key_slot

from push.redis_clients import REDIS_UNAVAILABLE
from push.redis_cluster import node_client, primary_for

log = logging.getLogger(__name__)

#: The channel a single-Redis subscriber listens on from its start, so that its
#: connection exists before the first user's wake channel is added to it.
HUB_CHANNEL = "push:hub"
#: How long a node reader waits for a message before looking again.
NODE_READ_S = 5.0


class WakeSubscriber(Protocol):
    #: False until resubscribe() has run, and again after a connection failed.
    healthy: bool

    def subscribe(self, channel: str) -> None: ...
    def unsubscribe(self, channel: str) -> None: ...
    def resubscribe(self, channels: Iterable[str]) -> None: ...
    def get_message(self, timeout: float) -> tuple[bytes, bytes] | None: ...
    def close(self) -> None: ...


class ChannelWakes:
    """Plain pub/sub on one Redis; redis-py re-subscribes when it reconnects."""

    def __init__(self, client: redis.Redis) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)

    @property
    def healthy(self) -> bool:
        return self._pubsub.subscribed

    def subscribe(self, channel: str) -> None:
        self._pubsub.subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        self._pubsub.unsubscribe(channel)

    def resubscribe(self, channels: Iterable[str]) -> None:
        self._pubsub.subscribe(HUB_CHANNEL, *channels)

    def get_message(self, timeout: float) -> tuple[bytes, bytes] | None:
        message = self._pubsub.get_message(timeout=timeout)
        if message is None or message["type"] != "message":
            return None
        return message["channel"], message["data"]

    def close(self) -> None:
        self._pubsub.close()


class ShardedWakes:
    """Sharded pub/sub on a cluster: one connection to each primary that owns a slot of
    a subscribed channel, with a reader greenlet each feeding one inbox.

    When a node's connection breaks, or the node says a channel's slot moved away
    (it sends `sunsubscribe` unasked), the subscriber turns unhealthy: the hub wakes
    every user (wakes may have been missed) and calls resubscribe(), which refreshes
    the slot map and subscribes each channel on its owner as it is now."""

    def __init__(self, cluster: RedisCluster, socket_timeout: float) -> None:
        self._cluster = cluster
        self._socket_timeout = socket_timeout
        self._channels: set[str] = set()
        #: node name -> (its pub/sub, its reader greenlet)
        self._nodes: dict[str, tuple[redis.client.PubSub, gevent.Greenlet]] = {}
        self._owner: dict[str, str] = {}
        #: Channels unsubscribed whose confirmation has not come back yet.
        self._leaving: dict[str, int] = defaultdict(int)
        self._inbox: Queue = Queue()
        self.healthy = False

    def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if self.healthy:
            try:
                self._subscribe_on_owner([channel])
            except REDIS_UNAVAILABLE as error:
                self._inbox.put(error)
                raise

    def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        owner = self._owner.pop(channel, None)
        if self.healthy and owner in self._nodes:
            self._leaving[channel] += 1
            self._nodes[owner][0].sunsubscribe(channel)

    def resubscribe(self, channels: Iterable[str]) -> None:
        self._close_nodes()
        self._inbox = Queue()  # what is in it is stale: the hub wakes every user anyway
        self._channels = set(channels)
        self._cluster.nodes_manager.initialize()
        by_slot: dict[int, list[str]] = defaultdict(list)
        for channel in self._channels:
            by_slot[key_slot(channel.encode())].append(channel)
        for group in by_slot.values():
            self._subscribe_on_owner(group)
        self.healthy = True

    def get_message(self, timeout: float) -> tuple[bytes, bytes] | None:
        if not self.healthy:
            raise redis.ConnectionError("the sharded wake subscriber must resubscribe")
        try:
            item = self._inbox.get(timeout=timeout)
        except Empty:
            return None
        if isinstance(item, Exception):
            self.healthy = False
            self._close_nodes()
            raise item
        return item

    def close(self) -> None:
        self._close_nodes()

    def _subscribe_on_owner(self, channels: list[str]) -> None:
        """SSUBSCRIBE channels of one slot on the primary that owns it."""
        node = primary_for(self._cluster, channels[0])
        if node.name not in self._nodes:
            client = node_client(
                self._cluster, node, socket_timeout=self._socket_timeout, reconnect=False
            )
            pubsub = client.pubsub()
            pubsub.ssubscribe(*channels)
            self._nodes[node.name] = (pubsub, gevent.spawn(self._read, pubsub, node.name))
        else:
            self._nodes[node.name][0].ssubscribe(*channels)
        for channel in channels:
            self._owner[channel] = node.name

    def _read(self, pubsub: redis.client.PubSub, node_name: str) -> None:
        try:
            while True:
                message = pubsub.get_message(timeout=NODE_READ_S)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "smessage":
                    self._inbox.put((message["channel"], message["data"]))
                elif kind == "sunsubscribe":
                    channel = message["channel"].decode()
                    if self._leaving.get(channel):
                        self._leaving[channel] -= 1
                        if not self._leaving[channel]:
                            del self._leaving[channel]
                    elif channel in self._channels and self._owner.get(channel) == node_name:
                        # Unasked: the slot moved to another node.
                        raise redis.ConnectionError(f"slot of {channel} moved from {node_name}")
        except REDIS_UNAVAILABLE as error:
            self._inbox.put(error)

    def _close_nodes(self) -> None:
        nodes, self._nodes = self._nodes, {}
        self._owner.clear()
        self._leaving.clear()
        for pubsub, reader in nodes.values():
            reader.kill(block=False)
            try:
                pubsub.close()
                pubsub.connection_pool.disconnect()
            except Exception as error:  # a broken connection may fail to close
                log.debug("closing a node subscriber failed error=%s", error)
