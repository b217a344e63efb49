"""Wake subscribers: how a worker hears that a user's history grew, on any Redis.

A wake is a message on the user's channel `{mailbox}:wake`: PUBLISH on a single
Redis or Sentinel, SPUBLISH on a cluster, where a sharded channel lives on the
node that owns the mailbox's slot and is heard only there. Both subscribers offer
the same calls to the switchboard: subscribe, unsubscribe, resubscribe everything after a
failure, and get the next wake as `(channel, data)`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import gevent
import redis
from gevent.lock import Semaphore
from gevent.queue import Empty, Queue
from redis.cluster import RedisCluster
from redis.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from push.storage.clients import REDIS_UNAVAILABLE
from push.storage.cluster import node_client, primary_for
from push.storage.resp3 import Resp3Connection, pack

log = logging.getLogger(__name__)

#: The channel a single-Redis subscriber listens on from its start, so that its
#: connection exists before the first user's wake channel is added to it.
HUB_CHANNEL = "push:hub"
#: How long a node reader waits for a message before looking again.
NODE_READ_S = 5.0
#: Channels per SUBSCRIBE when a subscriber subscribes everything again.
SUBSCRIBE_CHUNK = 1000


class WakeSubscriber(Protocol):
    #: False until resubscribe() has run, and again after a connection failed.
    healthy: bool

    def subscribe(self, channel: str) -> None: ...
    def unsubscribe(self, channel: str) -> None: ...
    def refresh(self) -> None: ...
    def resubscribe(self, channels: Iterable[str]) -> None: ...
    def get_message(self, timeout: float) -> tuple[bytes, bytes] | None: ...
    def close(self) -> None: ...


class ChannelWakes:
    """Plain pub/sub on one Redis, on a connection of its own read with hiredis directly
    (resp3.py): redis-py's get_message cost about 100 us a wake, and a worker hears one
    for every batch another worker moves for a user they share.

    Subscribing only sends the command (its confirmation is a push message, passed
    over). After a failure the switchboard calls `resubscribe` with every channel it wants."""

    def __init__(self, connect: Callable[[], AbstractConnection]) -> None:
        self._connect = connect
        self._connection: Resp3Connection | None = None
        self._messages: deque[tuple[bytes, bytes]] = deque()
        self._sending = Semaphore()
        self.healthy = False

    def subscribe(self, channel: str) -> None:
        self._send(("SUBSCRIBE", channel))

    def unsubscribe(self, channel: str) -> None:
        self._send(("UNSUBSCRIBE", channel))

    def refresh(self) -> None:
        """Nothing to learn first: there is one server."""

    def resubscribe(self, channels: Iterable[str]) -> None:
        """A fresh connection subscribed to HUB_CHANNEL and `channels`."""
        self.close()
        connection = Resp3Connection(self._connect(), self._push)
        connection.connection.connect()
        connection.take_over()
        self._connection = connection
        wanted = [HUB_CHANNEL, *channels]
        for start in range(0, len(wanted), SUBSCRIBE_CHUNK):
            self._send(("SUBSCRIBE", *wanted[start : start + SUBSCRIBE_CHUNK]))
        self.healthy = True

    def get_message(self, timeout: float) -> tuple[bytes, bytes] | None:
        if not self._messages:
            connection = self._connection
            if connection is None:
                raise redis.ConnectionError("the wake subscriber is not connected")
            try:
                connection.wait(timeout)
            except REDIS_UNAVAILABLE:
                self.close()
                raise
        return self._messages.popleft() if self._messages else None

    def close(self) -> None:
        self.healthy = False
        self._messages.clear()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _send(self, command: tuple) -> None:
        connection = self._connection
        if connection is None or not connection.is_open:
            return  # the switchboard subscribes everything again once it is back
        with self._sending:
            connection.send_packed(pack(command))

    def _push(self, message: list) -> None:
        if len(message) == 3 and message[0] == b"message":
            self._messages.append((message[1], message[2]))


@dataclass(frozen=True)
class _NodeLost:
    """A node's subscription stopped serving: its connection broke, or a slot moved."""

    node: str
    pubsub: redis.client.PubSub
    reason: str


class ShardedWakes:
    """Sharded pub/sub on a cluster: one connection to each primary that owns a slot of
    a subscribed channel, with a reader greenlet each feeding one inbox.

    Each node is looked after alone. When a node's connection breaks, when it says a
    channel's slot moved away (an unasked `sunsubscribe`), or when the client's slot map
    (refreshed by any command that met MOVED or a dead node) names another owner, the
    channels of that node alone become orphans. get_message then raises once, so the switchboard
    wakes every user (a wake may have been missed), and resubscribe() places the orphans
    on their owners as a fresh slot map says, retried by the switchboard until it succeeds; the
    other nodes' subscriptions stay as they are and their wakes keep coming."""

    def __init__(self, cluster: RedisCluster, socket_timeout: float) -> None:
        self._cluster = cluster
        self._socket_timeout = socket_timeout
        self._channels: set[str] = set()
        #: node name -> (its pub/sub, its reader greenlet)
        self._nodes: dict[str, tuple[redis.client.PubSub, gevent.Greenlet]] = {}
        #: subscribed channel -> the node it is subscribed on
        self._owner: dict[str, str] = {}
        #: wanted channels subscribed nowhere (their node failed, or their slot moved)
        self._orphans: set[str] = set()
        #: (node, channel) unsubscribed whose confirmation has not come back yet
        self._leaving: dict[tuple[str, str], int] = defaultdict(int)
        self._inbox: Queue = Queue()

    @property
    def healthy(self) -> bool:
        return not self._orphans

    def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        try:
            self._place([channel])
        except REDIS_UNAVAILABLE:
            self._orphans.add(channel)
            raise

    def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._orphans.discard(channel)
        owner = self._owner.pop(channel, None)
        if owner in self._nodes:
            self._leaving[(owner, channel)] += 1
            self._nodes[owner][0].sunsubscribe(channel)

    def refresh(self) -> None:
        """Read the slot map afresh (outside the switchboard's lock: it may wait on dead nodes)."""
        if self._orphans:
            try:
                self._cluster.nodes_manager.initialize()
            except RedisClusterException as error:
                raise redis.ConnectionError(f"the cluster's slot map: {error}") from error

    def resubscribe(self, channels: Iterable[str]) -> None:
        """Make sure every one of `channels` is subscribed on the node that owns it."""
        self._channels = set(channels)
        for channel in [c for c in self._owner if c not in self._channels]:
            self.unsubscribe(channel)
        self._orphans = {c for c in self._channels if c not in self._owner}
        by_slot: dict[int, list[str]] = defaultdict(list)
        for channel in self._orphans:
            by_slot[key_slot(channel.encode())].append(channel)
        failure: Exception | None = None
        for group in by_slot.values():
            try:
                self._place(group)
            except REDIS_UNAVAILABLE as error:
                failure = failure or error
                continue
            self._orphans.difference_update(group)
        if failure is not None:
            raise failure

    def get_message(self, timeout: float) -> tuple[bytes, bytes] | None:
        try:
            item = self._inbox.get(timeout=timeout)
        except Empty:
            self._check_owners()
            return None
        if isinstance(item, _NodeLost):
            current = self._nodes.get(item.node)
            if current is not None and current[0] is item.pubsub:
                self._drop_node(item.node)
                raise redis.ConnectionError(item.reason)
            return None
        return item

    def close(self) -> None:
        for name in list(self._nodes):
            self._drop_node(name)

    def _place(self, channels: list[str]) -> None:
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

    def _check_owners(self) -> None:
        """Orphan the channels whose slot the client's slot map gives to another node now
        (a failover behind a connection that looks alive but hears nothing)."""
        for channel, owner in list(self._owner.items()):
            try:
                moved = primary_for(self._cluster, channel).name != owner
            except REDIS_UNAVAILABLE:
                moved = False  # the slot has no primary yet: look again later
            if moved:
                del self._owner[channel]
                self._orphans.add(channel)
                if owner in self._nodes:
                    self._leaving[(owner, channel)] += 1
                    with contextlib.suppress(*REDIS_UNAVAILABLE):
                        self._nodes[owner][0].sunsubscribe(channel)

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
                    leaving = (node_name, message["channel"].decode())
                    if self._leaving.get(leaving):
                        self._leaving[leaving] -= 1
                        if not self._leaving[leaving]:
                            del self._leaving[leaving]
                    elif self._owner.get(leaving[1]) == node_name:
                        self._inbox.put(
                            _NodeLost(node_name, pubsub, f"slot of {leaving[1]} moved away")
                        )
                        return
        except gevent.GreenletExit:
            raise
        except Exception as error:  # whatever stops the reader stops the node's wakes
            self._inbox.put(_NodeLost(node_name, pubsub, f"{type(error).__name__}: {error}"))

    def _drop_node(self, name: str) -> None:
        pubsub, reader = self._nodes.pop(name)
        reader.kill(block=False)
        for channel, owner in list(self._owner.items()):
            if owner == name:
                del self._owner[channel]
                self._orphans.add(channel)
        for leaving in [key for key in self._leaving if key[0] == name]:
            del self._leaving[leaving]
        try:
            pubsub.close()
            pubsub.connection_pool.disconnect()
        except Exception as error:  # a broken connection may fail to close
            log.debug("closing a node subscriber failed node=%s error=%s", name, error)
