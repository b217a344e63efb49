"""A Redis connection that hears which keys other clients wrote: client-side caching's
invalidation messages, used by the mailbox watcher as a hint that a mailbox received mail.

Theory of operation: the connection speaks RESP3 and turns on
`CLIENT TRACKING on OPTIN NOLOOP`. A `CLIENT CACHING yes` followed by a read of a key
(`LLEN` of a mailbox, even an absent one) arms one invalidation: the next write to that
key by any other client sends the key's name to this connection as a push message,
`["invalidate", [key]]`, and later writes send nothing until the key is read again.
NOLOOP: this connection's own writes (the drains it sends) send nothing back. A flush of
the database sends `["invalidate", null]`: every key. Tracking needs no configuration
of the server (unlike keyspace notifications, `notify-keyspace-events`), and Redis holds
only a small table of the keys read (`tracking-table-max-keys`; a key it evicts from the
table is invalidated, which is one more hint, never a lost one).

Replies and push messages share the connection, and both are read here with hiredis
directly: redis-py's `read_response` recurses once for each push message ahead of a
reply (a burst of thousands overflows the stack), and its pub/sub machinery costs about
100 us a message. Under gevent every read is cooperative; `read_available` never waits.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Sequence
from typing import Any

import hiredis
from gevent import monkey
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: Bytes read from the socket at a time.
READ_SIZE = 65_536
#: The operating system's poll, untouched by gevent: with a zero timeout it never blocks.
_native_poll = monkey.get_original("select", "poll")
_READABLE = select.POLLIN | select.POLLERR | select.POLLHUP


#: One command in Redis's wire format (RESP), packed in C: a user's drain, packed once
#: when the watcher starts watching it, costs no packing per message.
pack = hiredis.pack_command


class TrackingRefused(Exception):
    """The server will not track keys for us (too old, an ACL, a proxy in between): the
    mailbox watcher cannot work there, and the service falls back to blocking movers."""


class TrackedConnection:
    """One connection to one Redis server with invalidation tracking on."""

    def __init__(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self._reader: Any = None
        self._sock: socket.socket | None = None
        self._buffer = bytearray(READ_SIZE)
        #: Keys named by the invalidations read so far (None: every key was invalidated).
        self._invalidated: list[bytes | None] = []

    def open(self) -> None:
        """Connect and turn tracking on; TrackingRefused if the server will not."""
        try:
            self._connection.connect()
        except ResponseError as error:  # HELLO 3 refused: a server older than Redis 6
            raise TrackingRefused(f"RESP3 refused: {error}") from error
        try:
            self._connection.send_command("CLIENT", "TRACKING", "on", "OPTIN", "NOLOOP")
            self._connection.read_response()
        except ResponseError as error:
            self._connection.disconnect()
            raise TrackingRefused(f"CLIENT TRACKING refused: {error}") from error
        self._sock = self._connection._sock
        self._reader = hiredis.Reader()

    def fileno(self) -> int:
        if self._sock is None:
            raise ConnectionError("the tracked connection is closed")
        return self._sock.fileno()

    def take_invalidated(self) -> list[bytes | None]:
        """The keys invalidated since the last call (None: all of them)."""
        taken, self._invalidated = self._invalidated, []
        return taken

    def read_available(self) -> None:
        """Read whatever push messages have arrived, without waiting."""
        while True:
            item = self._reader.gets() if self._reader is not None else False
            if item is False:
                if not self._readable_now():
                    return
                self._receive()
                continue
            if not isinstance(item, hiredis.PushNotification):
                raise ConnectionError(f"a reply nobody asked for: {item!r:.80}")
            self._push(item)

    def execute(self, commands: Sequence[tuple]) -> list:
        """Send `commands` in one write and return their replies in order; an error reply
        is returned as a hiredis ReplyError, not raised. Push messages read on the way are
        kept for `take_invalidated`."""
        return self.execute_packed(b"".join(map(pack, commands)), len(commands))

    def execute_packed(self, data: bytes, count: int) -> list:
        """`execute` for commands already packed (`pack`): `count` of them in `data`."""
        if self._sock is None:
            raise ConnectionError("the tracked connection is closed")
        self._connection.send_packed_command([data], check_health=False)
        replies: list = []
        reader = self._reader
        while len(replies) < count:
            item = reader.gets()
            if item is False:
                self._receive()
            elif isinstance(item, hiredis.PushNotification):
                self._push(item)
            else:
                replies.append(item)
        return replies

    def close(self) -> None:
        self._sock = None
        self._reader = None
        self._connection.disconnect()

    def _push(self, message: list) -> None:
        if len(message) == 2 and message[0] == b"invalidate":
            keys = message[1]
            if keys is None:
                self._invalidated.append(None)
            else:
                self._invalidated.extend(keys)

    def _readable_now(self) -> bool:
        sock = self._sock
        if sock is None:
            return False
        if hasattr(sock, "pending") and sock.pending():  # TLS: decrypted bytes waiting
            return True
        poller = _native_poll()
        poller.register(sock.fileno(), _READABLE)
        return bool(poller.poll(0))

    def _receive(self) -> None:
        """One read from the socket (cooperative, bounded by the socket's timeout)."""
        sock = self._sock
        if sock is None:
            raise ConnectionError("the tracked connection is closed")
        try:
            count = sock.recv_into(self._buffer)
        except TimeoutError as error:
            raise RedisTimeoutError("Redis did not answer the watcher in time") from error
        except OSError as error:
            raise ConnectionError(f"the watcher's connection failed: {error}") from error
        if count == 0:
            raise ConnectionError("Redis closed the watcher's connection")
        self._reader.feed(self._buffer, 0, count)
