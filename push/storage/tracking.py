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
"""

from __future__ import annotations

from redis.connection import AbstractConnection
from redis.exceptions import ResponseError

from push.storage.resp3 import Resp3Connection, pack

__all__ = ["TrackedConnection", "TrackingRefused", "pack"]


class TrackingRefused(Exception):
    """The server will not track keys for us (too old, an ACL, a proxy in between): the
    mailbox watcher cannot work there, and the service falls back to blocking movers."""


class TrackedConnection(Resp3Connection):
    """One connection to one Redis server with invalidation tracking on."""

    def __init__(self, connection: AbstractConnection) -> None:
        super().__init__(connection, self._push)
        #: Keys named by the invalidations read so far (None: every key was invalidated).
        self._invalidated: list[bytes | None] = []

    def open(self) -> None:
        """Connect and turn tracking on; TrackingRefused if the server will not."""
        try:
            self.connection.connect()
        except ResponseError as error:  # HELLO 3 refused: a server older than Redis 6
            raise TrackingRefused(f"RESP3 refused: {error}") from error
        try:
            self.connection.send_command("CLIENT", "TRACKING", "on", "OPTIN", "NOLOOP")
            self.connection.read_response()
        except ResponseError as error:
            self.connection.disconnect()
            raise TrackingRefused(f"CLIENT TRACKING refused: {error}") from error
        self.take_over()

    def take_invalidated(self) -> list[bytes | None]:
        """The keys invalidated since the last call (None: all of them)."""
        taken, self._invalidated = self._invalidated, []
        return taken

    def _push(self, message: list) -> None:
        if len(message) == 2 and message[0] == b"invalidate":
            keys = message[1]
            if keys is None:
                self._invalidated.append(None)
            else:
                self._invalidated.extend(keys)
