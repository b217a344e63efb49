"""redis-py's hiredis parser with a readiness check that suits gevent.

redis-py asks "can this connection be read?" before every pooled command (a
connection handed out must hold no stale reply) and on every pub/sub
`get_message(timeout=...)`. It answers with `select.poll()`, which gevent's
monkey-patching turns into an emulation that starts watchers and a Timeout and
switches greenlets even for a zero timeout: about 30 us a check on the bench
machine, several times the command's own client-side cost. Here a zero-timeout
check is one non-blocking native `poll` system call, and a wait with a timeout
waits on the socket alone (`gevent.socket.wait_read`), as cooperative as before.
"""

from __future__ import annotations

import select
import socket

from gevent import monkey
from gevent.socket import wait_read
from redis._parsers import _HiredisParser
from redis.exceptions import ConnectionError
from redis.utils import HIREDIS_AVAILABLE

#: The operating system's poll, untouched by gevent: with a zero timeout it never blocks.
_native_poll = monkey.get_original("select", "poll")
_READABLE = select.POLLIN | select.POLLERR | select.POLLHUP
_CLOSED = "Connection closed by server."


def _ready_now(sock: socket.socket) -> bool:
    poller = _native_poll()
    poller.register(sock.fileno(), _READABLE)
    return bool(poller.poll(0))


class CooperativeHiredisParser(_HiredisParser):
    """Answers can_read the way redis-py's parser does, without gevent's poll emulation."""

    def can_read(self, timeout: float | None = 0) -> bool:
        if not self._reader:
            raise ConnectionError(_CLOSED)
        if self._reader.has_data():
            return True
        sock = self._sock
        if hasattr(sock, "pending"):  # TLS: bytes may wait above the socket; no MSG_PEEK
            return super().can_read(timeout)
        if not _ready_now(sock):
            if timeout == 0:
                return False
            try:
                wait_read(sock.fileno(), timeout)
            except TimeoutError:
                return False
            # Other greenlets ran meanwhile: the connection may have been closed or opened
            # again (the descriptor reused), or the data read. Look again, without yielding,
            # so the peek below never waits.
            sock = self._sock
            if sock is None or not self._reader:
                raise ConnectionError(_CLOSED)
            if self._reader.has_data():
                return True
            if not _ready_now(sock):
                return False
        # Readable: data, or the server's close (EOF peeks as b"").
        if sock.recv(1, socket.MSG_PEEK) == b"":
            raise ConnectionError(_CLOSED)
        return True


def cooperative_parser() -> type[_HiredisParser] | None:
    """The parser class for this process: ours under gevent's monkey-patching (with hiredis),
    else None: redis-py's default (the CLI and the tests' own clients run without gevent)."""
    if HIREDIS_AVAILABLE and monkey.is_module_patched("select"):
        return CooperativeHiredisParser
    return None
