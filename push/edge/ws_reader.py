"""simple-websocket's reader without a greenlet parked on every socket.

simple-websocket reads each socket in a thread of its own (a greenlet under
gevent) that blocks in `recv()` for the socket's whole life, and wakes whoever
waits in `receive()` through an event. A parked greenlet costs an idle socket
its saved stack and its own Python frame stack, several KB each, and a push
client sends almost nothing (a short ack now and then). Both are replaced
through simple-websocket's own options (`thread_class`, `event_class`): a read
watcher on the event loop spawns a greenlet only when the client has sent
something, runs one step of simple-websocket's read loop, and hands complete
frames straight to a callback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import gevent
from gevent import get_hub
from wsproto.utilities import LocalProtocolError

log = logging.getLogger(__name__)

#: libev's EV_READ.
READ = 1
#: Seconds `stop()` lets a read that is under way finish (an ack's Redis round trip).
STOP_WAIT_S = 5.0


class FrameSignal:
    """simple-websocket's `event_class`: set when a client frame has arrived or the
    connection has ended. It calls `on_set` right there instead of waking a greenlet
    waiting in `receive()`, which is not for use with it."""

    __slots__ = ("on_set",)

    def __init__(self) -> None:
        self.on_set: Callable[[], None] | None = None

    def set(self) -> None:
        if self.on_set is not None:
            self.on_set()

    def clear(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> bool:
        raise RuntimeError("client frames are handled as they arrive (FrameSignal.on_set)")


class _HandshakeDone:
    """What wsproto's WSConnection keeps as its `handshake` once the connection is open:
    it only asks it for events, and there are none left. The H11Handshake it replaces
    kept an HTTP/1.1 parser (h11) and the request, about 2 KB, for the socket's life."""

    __slots__ = ()

    def events(self) -> Iterator[Any]:
        return iter(())


HANDSHAKE_DONE = _HandshakeDone()


def forget_handshake(ws: Any) -> None:
    """Drop what an open simple-websocket Server kept of its handshake (the Server read
    all of the handshake's events when it accepted the connection)."""
    protocol = ws.ws
    if protocol.connection is not None:
        protocol.handshake = HANDSHAKE_DONE


class ReadWhenReadable:
    """simple-websocket's `thread_class`: given the Server's read loop as `target`, it
    reads the Server's socket from a read watcher instead, one step per readable event,
    the same step as that loop's (the Server is configured without pings, which are
    sent by the view: push/edge/ws_view.py). The owner calls `stop()` before the socket is closed
    or reused."""

    __slots__ = ("_io", "_reading", "_stopped", "_ws", "name")

    def __init__(self, target: Callable[[], None]) -> None:
        self._ws: Any = target.__self__  # the simple_websocket.Server
        self.name = "websocket-reader"
        self._io: Any = None
        self._reading: gevent.Greenlet | None = None
        self._stopped = False

    def start(self) -> None:
        self._io = get_hub().loop.io(self._ws.sock.fileno(), READ)
        self._io.start(self._readable)

    def _readable(self) -> None:
        self._io.stop()
        self._reading = gevent.spawn(self._read)

    def _read(self) -> None:
        ws = self._ws
        try:
            data = ws.sock.recv(ws.receive_bytes)
            if not data:
                raise OSError("the client closed the connection")
            ws.ws.receive_data(data)
            ws.connected = ws._handle_events()
        except (OSError, LocalProtocolError):
            ws.connected = False
        except Exception:
            # Nothing a client sends may end the reading silently: the connection ends
            # (the handler closes it) and the log says why.
            log.exception("websocket read failed")
            ws.connected = False
        self._reading = None
        if self._stopped:
            return
        if ws.connected:
            self._io.start(self._readable)
            return
        self._end()
        ws.sock.close()
        ws.event.set()  # the handler sees the connection closed

    def _end(self) -> None:
        self._stopped = True
        self._io.stop()
        self._io.close()

    def stop(self) -> None:
        """Stop reading (a read under way may finish first)."""
        if self._stopped:
            return
        if self._reading is not None:
            self._reading.join(STOP_WAIT_S)
            if self._reading is not None:
                self._reading.kill(block=True)
        if not self._stopped:
            self._end()
