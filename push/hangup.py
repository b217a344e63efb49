"""Noticing a client that hangs up, without waiting for the next write to fail."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

import gevent
from gevent.socket import wait_read


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


def _watch(sock: socket.socket, on_hangup: Callable[[], None]) -> None:
    while True:
        wait_read(sock.fileno())
        try:
            peeked = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:
            on_hangup()
            return
        if not peeked:
            on_hangup()
        # Bytes from the client (a pipelined request) are not ours to read: stop
        # watching; the heartbeat's write still notices a hang-up.
        return


def watch_for_hangup(
    environ: dict[str, Any], on_hangup: Callable[[], None]
) -> gevent.Greenlet | None:
    """Start a greenlet that calls `on_hangup` when the client closes its end.

    Kill it (block=True) before the server closes or reuses the socket."""
    sock = client_socket(environ)
    if sock is None:
        return None
    return gevent.spawn(_watch, sock, on_hangup)
