"""simple-websocket and flask-sock behind the few calls the WebSocket view makes.

The view needs more than their public API: frames written whole with its own pings,
one frame's bytes shared by every socket, client frames handled as they arrive with
no greenlet parked on each socket, nothing of a closed socket left to the garbage
collector. Every use of their internals (and wsproto's) is here, and
tests/test_websocket_adapter.py pins their versions to requirements.txt and tries
each internal relied on: an upgrade fails that test first.

The view sees `websocket_route`, a `ClientSocket` per connection, `text_frame`,
`refuse_extensions` and `WebSocketClosed`; push/service.py sees `server_options`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gevent
from flask import Blueprint, Response, g
from flask_sock import Sock
from gevent import get_hub
from gevent.lock import Semaphore
from simple_websocket import ConnectionClosed, Server
from wsproto.events import CloseConnection, Ping, TextMessage
from wsproto.frame_protocol import FrameProtocol
from wsproto.utilities import LocalProtocolError

from push.edge.hangup import READ, cut

log = logging.getLogger(__name__)

#: What a send on a closed connection raises (and the view lets end the connection).
WebSocketClosed = ConnectionClosed
#: Seconds `stop_reading()` lets a read that is under way finish (an ack's Redis round trip).
STOP_WAIT_S = 5.0


def refuse_extensions(environ: dict[str, Any]) -> None:
    """Negotiate no extension: no permessage-deflate, whose zlib state would stay with each
    socket (about 300 KB once a message has gone out), for messages of a few hundred
    bytes. `text_frame` relies on it: a frame is then the same bytes on every socket."""
    environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


#: Frames server to client: a server's frames are not masked and no extension is
#: negotiated (`refuse_extensions`), so a frame is the same bytes on every socket.
_FRAMING = FrameProtocol(client=False, extensions=[])


def text_frame(text: str) -> bytes:
    """One text frame, server to client, for any socket of this service."""
    return _FRAMING.send_data(text)


class SerialSocket:
    """The WebSocket's socket, with every write whole and one at a time.

    simple-websocket writes the answers to the client's pings and its close from the
    reader with a plain `send`, which may write part of a large frame; the view's frames
    go out from the view's greenlet. Both go through `send` here: under one lock, with
    sendall."""

    __slots__ = ("lock", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.lock = Semaphore()

    def send(self, data: bytes) -> int:
        with self.lock:
            self.raw.sendall(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


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


class ReadWhenReadable:
    """simple-websocket's `thread_class`, without a greenlet parked on every socket.

    simple-websocket reads each socket in a thread of its own (a greenlet under gevent)
    that blocks in `recv()` for the socket's whole life; a parked greenlet costs an idle
    socket its saved stack and its own Python frame stack, several KB each, and a push
    client sends almost nothing (a short ack now and then). Given the Server's read loop
    as `target`, this reads the Server's socket from a read watcher instead: a greenlet
    is spawned only when the client has sent something, runs one step of that loop, and
    `FrameSignal` hands complete frames to a callback. The Server has no pings of its
    own (`server_options`). The owner calls `stop()` before the socket is closed."""

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


def server_options(max_message_size: int) -> dict[str, Any]:
    """flask-sock's SOCK_SERVER_OPTIONS: the reader above, and pings left to the view's
    loop (no selector per socket). simple-websocket closes 1009 past `max_message_size`."""
    return {
        "ping_interval": None,
        "thread_class": ReadWhenReadable,
        "event_class": FrameSignal,
        "max_message_size": max_message_size,
    }


class _HandshakeDone:
    """What wsproto's WSConnection keeps as its `handshake` once the connection is open:
    it only asks it for events, and there are none left. The H11Handshake it replaces
    kept an HTTP/1.1 parser (h11) and the request, about 2 KB, for the socket's life."""

    __slots__ = ()

    def events(self) -> Iterator[Any]:
        return iter(())


HANDSHAKE_DONE = _HandshakeDone()


class ClientSocket:
    """One accepted WebSocket, as the view uses it.

    `received` is the list of complete client frames not yet handled (the handler pops
    them); `connected` turns False when either side closed."""

    __slots__ = ("_serial", "_server", "received")

    def __init__(self, server: Server) -> None:
        # The Server read all of the handshake's events when it accepted the connection.
        if server.ws.connection is not None:
            server.ws.handshake = HANDSHAKE_DONE
        self._server = server
        self._serial = server.sock = SerialSocket(server.sock)
        self.received: list[str | bytes] = server.input_buffer

    @property
    def connected(self) -> bool:
        return bool(self._server.connected)

    def on_frames(self, handler: Callable[[], None] | None) -> None:
        """Call `handler` in the reader when client frames arrived (or the client left)."""
        self._server.event.on_set = handler

    def send_frames(self, frames: list[bytes]) -> None:
        """Frames (from `text_frame`) in one socket write; WebSocketClosed once closed."""
        server = self._server
        with self._serial.lock:
            if not server.connected:
                raise WebSocketClosed(server.close_reason, server.close_message)
            self._serial.raw.sendall(b"".join(frames))

    def send_text(self, text: str) -> None:
        """One text frame, whole, under the socket's lock."""
        server = self._server
        with self._serial.lock:
            if not server.connected:
                raise WebSocketClosed(server.close_reason, server.close_message)
            self._serial.raw.sendall(server.ws.send(TextMessage(data=text)))

    def ping(self) -> bool:
        """Ping the client; False if it has not answered the previous ping (it is gone)."""
        server = self._server
        if not server.pong_received:
            return False
        server.pong_received = False
        with self._serial.lock:
            if server.connected:
                self._serial.raw.sendall(server.ws.send(Ping()))
        return True

    def close(self, code: int, reason: str) -> None:
        """Send a close frame (once; a write error is ignored: the client is gone)."""
        server = self._server
        with self._serial.lock:
            if not server.connected:
                return
            server.connected = False
            with contextlib.suppress(OSError):
                self._serial.raw.sendall(server.ws.send(CloseConnection(code, reason)))

    def abort(self) -> None:
        """Shut the socket down, so that a write blocked on it fails at once."""
        cut(self._serial.raw)

    def stop_reading(self) -> None:
        """Stop the reader; before the server closes the socket."""
        self._server.thread.stop()


def _forget_server(server: Server) -> None:
    """flask-sock answers each WebSocket with an instance of a class it makes per request,
    whose method keeps the Server (socket, buffers, protocol state) in its closure. A
    class is always in a reference cycle, so all of that would wait for the next full
    garbage collection (rare here: push/runtime.py). The reader is stopped by now (the
    view's end): keep only what that method reads."""
    server.thread.stop()
    mode = server.mode
    server.__dict__.clear()
    server.mode = mode


def websocket_route(
    bp: Blueprint, path: str
) -> Callable[[Callable[[ClientSocket], None]], Callable[[ClientSocket], None]]:
    """Route WebSocket upgrades of `path` on `bp` to a view given a ClientSocket.

    flask-sock accepts the connection (the 101 is sent before the view runs), closes
    it when the view returns, and swallows WebSocketClosed."""
    sock = Sock()

    def route(view: Callable[[ClientSocket], None]) -> Callable[[ClientSocket], None]:
        @sock.route(path, bp=bp)
        def accepted(server: Server) -> None:
            g.websocket_server = server
            view(ClientSocket(server))

        @bp.after_request
        def forget_websocket_state(response: Response) -> Response:
            server = g.pop("websocket_server", None)
            if server is not None:
                _forget_server(server)
            return response

        return view

    return route
