"""A RESP3 connection whose replies and push messages are read with hiredis directly.

Push messages (an invalidation of a tracked key, a pub/sub message) share the
connection with replies. redis-py reads them through its own machinery: its
`read_response` recurses once for each push ahead of a reply (a burst of thousands
overflows the stack), and its pub/sub `get_message` costs about 100 us a message here.
This class reads the socket into a hiredis Reader and hands each push to `on_push`;
redis-py's connection is used only to connect (address, TLS, credentials, Sentinel,
HELLO 3, the client's name) and to send.

Under gevent every read is cooperative; `read_available` never waits.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import Any

import hiredis
from gevent import monkey
from gevent.socket import wait_read
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: Bytes read from the socket at a time.
READ_SIZE = 65_536
#: The operating system's poll, untouched by gevent: with a zero timeout it never blocks.
_native_poll = monkey.get_original("select", "poll")
_READABLE = select.POLLIN | select.POLLERR | select.POLLHUP

#: One command in Redis's wire format (RESP), packed in C: a command packed once (a
#: user's drain, when the watcher starts watching it) costs no packing per message.
pack = hiredis.pack_command


class Resp3Connection:
    """One connection speaking RESP3, read with hiredis; pushes go to `on_push`."""

    def __init__(self, connection: AbstractConnection, on_push: Callable[[list], None]) -> None:
        self._connection = connection
        self._on_push = on_push
        self._reader: Any = None
        self._sock: socket.socket | None = None
        self._buffer = bytearray(READ_SIZE)

    @property
    def connection(self) -> AbstractConnection:
        """redis-py's connection underneath, for commands sent before `take_over`."""
        return self._connection

    def take_over(self) -> None:
        """Read the socket from now on (redis-py has read every reply it asked for)."""
        self._sock = self._connection._sock
        self._reader = hiredis.Reader()

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def fileno(self) -> int:
        if self._sock is None:
            raise ConnectionError("the connection is closed")
        return self._sock.fileno()

    def send_packed(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectionError("the connection is closed")
        self._connection.send_packed_command([data], check_health=False)

    def execute_packed(self, data: bytes, count: int) -> list:
        """Send `count` packed commands in one write and return their replies in order; an
        error reply is returned as a hiredis ReplyError, not raised."""
        self.send_packed(data)
        replies: list = []
        reader = self._reader
        while len(replies) < count:
            item = reader.gets()
            if item is False:
                self._receive()
            elif isinstance(item, hiredis.PushNotification):
                self._on_push(item)
            else:
                replies.append(item)
        # Push messages that came in the same read as the last reply: the socket will not
        # turn readable for them again.
        self._take_parsed_pushes()
        return replies

    def read_available(self) -> None:
        """Read whatever push messages have arrived, without waiting."""
        while True:
            self._take_parsed_pushes()
            if not self._readable_now():
                return
            self._receive()

    def wait(self, timeout: float) -> None:
        """Wait up to `timeout` for something to read, then read what has arrived."""
        if not self._readable_now():
            try:
                wait_read(self.fileno(), timeout)
            except TimeoutError:
                return
        self.read_available()

    def close(self) -> None:
        self._sock = None
        self._reader = None
        self._connection.disconnect()

    def _take_parsed_pushes(self) -> None:
        """Every whole message already read from the socket; each must be a push."""
        reader = self._reader
        if reader is None:
            return
        while (item := reader.gets()) is not False:
            if not isinstance(item, hiredis.PushNotification):
                raise ConnectionError(f"a reply nobody asked for: {item!r:.80}")
            self._on_push(item)

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
            raise ConnectionError("the connection is closed")
        try:
            count = sock.recv_into(self._buffer)
        except TimeoutError as error:
            raise RedisTimeoutError("Redis did not answer in time") from error
        except OSError as error:
            raise ConnectionError(f"the connection failed: {error}") from error
        if count == 0:
            raise ConnectionError("Redis closed the connection")
        self._reader.feed(self._buffer, 0, count)
