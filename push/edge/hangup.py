"""Noticing a client that hangs up, without waiting for the next write to fail."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

import gevent
from gevent import get_hub

#: libev's EV_READ.
READ = 1


def cut(sock: Any) -> None:
    """Shut a client's socket down, so that a writer blocked on it fails at once."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The client's socket: gunicorn exposes it; gevent's WSGI server keeps it on its input."""
    if "gunicorn.socket" in environ:
        return environ["gunicorn.socket"]
    raw = getattr(getattr(environ.get("wsgi.input"), "rfile", None), "raw", None)
    return getattr(raw, "_sock", None)


class HangupWatch:
    """Calls `on_hangup` when the client closes its end of `sock`.

    A read watcher on the event loop with a callback rather than a greenlet blocked in
    a read: a parked greenlet costs each stream its saved stack (about 6 KB). A greenlet
    is spawned only when the socket turns readable, to tell a hang-up from data."""

    __slots__ = ("_checker", "_io", "_on_hangup", "_sock")

    def __init__(self, sock: socket.socket, on_hangup: Callable[[], None]) -> None:
        self._sock = sock
        self._on_hangup = on_hangup
        self._checker: gevent.Greenlet | None = None
        self._io = get_hub().loop.io(sock.fileno(), READ)
        self._io.start(self._readable)

    def _readable(self) -> None:
        self._io.stop()
        self._checker = gevent.spawn(self._check)

    def _check(self) -> None:
        try:
            peeked = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            self._on_hangup()
            return
        if not peeked:
            self._on_hangup()
        # Bytes from the client (a pipelined request) are not ours to read: stop
        # watching; the heartbeat's write still notices a hang-up.

    def stop(self) -> None:
        """Stop watching; call before the server closes or reuses the socket."""
        self._io.stop()
        self._io.close()
        if self._checker is not None:
            self._checker.kill(block=True)


def watch_for_hangup(environ: dict[str, Any], on_hangup: Callable[[], None]) -> HangupWatch | None:
    """Watch the request's client socket for a hang-up (None if the server hides it)."""
    sock = client_socket(environ)
    if sock is None:
        return None
    return HangupWatch(sock, on_hangup)
