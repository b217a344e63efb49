"""push/edge/websocket.py leans on simple-websocket's, flask-sock's and wsproto's internals:
these tests pin the versions to requirements.txt and try each internal it relies on, so an
upgrade fails here first, not in production.

A real Server on one end of a socket pair, a wsproto client on the other; the reader is
driven by gevent's event loop (waited on with a deadline, never slept on)."""

from __future__ import annotations

import socket
from importlib.metadata import version
from pathlib import Path

import gevent.event
import pytest
import simple_websocket
from flask import Blueprint, Flask
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from push.edge.websocket import (
    HANDSHAKE_DONE,
    ClientSocket,
    FrameSignal,
    ReadWhenReadable,
    WebSocketClosed,
    refuse_extensions,
    server_options,
    text_frame,
    websocket_route,
)

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
#: Seconds any awaited state may take.
DEADLINE_S = 10.0


def pinned(package: str) -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        name, _, pin = line.partition("==")
        if name.strip().lower() == package:
            return pin.strip()
    raise AssertionError(f"{package} is not pinned in requirements.txt")


@pytest.mark.parametrize("package", ["simple-websocket", "flask-sock", "wsproto"])
def test_the_installed_version_is_the_one_the_adapter_was_written_for(package) -> None:
    assert version(package) == pinned(package)


class Peer:
    """The client's end: a wsproto client on a plain socket, events read one by one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(DEADLINE_S)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: list = []

    def request_environ(self, offer_deflate: bool) -> dict:
        """The upgrade request as a WSGI server would pass it on (headers as HTTP_*)."""
        extensions = [PerMessageDeflate()] if offer_deflate else []
        request = self.ws.send(Request(host="push.test", target="/ws", extensions=extensions))
        environ: dict = {"REQUEST_METHOD": "GET", "PATH_INFO": "/ws"}
        for line in request.decode().split("\r\n")[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
        return environ

    def send(self, event) -> None:
        self.sock.sendall(self.ws.send(event))

    def next_event(self):
        while not self.pending:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)


@pytest.fixture
def pair():
    """(ClientSocket, its Server, the peer), accepted through server_options."""
    server_end, client_end = socket.socketpair()
    peer = Peer(client_end)
    environ = peer.request_environ(offer_deflate=True)
    refuse_extensions(environ)
    environ["gunicorn.socket"] = server_end
    server = simple_websocket.Server(environ, **server_options(max_message_size=64 * 1024))
    ws = ClientSocket(server)
    yield ws, server, peer
    ws.stop_reading()
    server_end.close()
    client_end.close()


def arrivals(ws: ClientSocket) -> gevent.event.Event:
    arrived = gevent.event.Event()
    ws.on_frames(arrived.set)
    return arrived


def test_the_server_reads_through_the_adapters_thread_and_event_classes(pair) -> None:
    ws, server, peer = pair
    accepted = peer.next_event()
    assert isinstance(accepted, AcceptConnection)
    assert accepted.extensions == []  # refused, though the client offered deflate
    assert isinstance(server.thread, ReadWhenReadable)
    assert isinstance(server.event, FrameSignal)
    assert server.ws.handshake is HANDSHAKE_DONE
    assert ws.connected and server.pong_received and server.receive_bytes > 0
    assert ws.received is server.input_buffer


def test_client_frames_arrive_whole_in_received_and_call_the_handler(pair) -> None:
    ws, _, peer = pair
    peer.next_event()
    arrived = arrivals(ws)
    peer.send(TextMessage(data='{"ack": ', message_finished=False))
    peer.send(TextMessage(data='"1-0"}'))
    assert arrived.wait(DEADLINE_S)
    assert ws.received == ['{"ack": "1-0"}']
    assert ws.connected


def test_a_shared_text_frame_is_the_frame_the_connection_writes(pair) -> None:
    ws, server, peer = pair
    peer.next_event()
    assert text_frame('{"id": "1-0"}') == server.ws.send(TextMessage(data='{"id": "1-0"}'))
    ws.send_frames([text_frame("one"), text_frame("two")])
    ws.send_text("three")
    assert [peer.next_event().data for _ in range(3)] == ["one", "two", "three"]


def test_a_ping_unanswered_is_seen_by_the_next_ping(pair) -> None:
    ws, _, peer = pair
    peer.next_event()
    assert ws.ping()
    assert isinstance(peer.next_event(), Ping)
    assert not ws.ping()
    arrived = arrivals(ws)
    peer.send(Pong())
    peer.send(TextMessage(data="after the pong"))  # read after the pong: wait on it
    assert arrived.wait(DEADLINE_S)
    assert ws.ping()


def test_close_sends_the_code_and_reason_once_and_sends_then_raise(pair) -> None:
    ws, _, peer = pair
    peer.next_event()
    ws.close(4408, "outbox full")
    ws.close(1011, "internal error")
    closed = peer.next_event()
    assert isinstance(closed, CloseConnection)
    assert (closed.code, closed.reason) == (4408, "outbox full")
    assert not ws.connected
    with pytest.raises(WebSocketClosed):
        ws.send_frames([text_frame("late")])
    with pytest.raises(WebSocketClosed):
        ws.send_text("late")


def test_a_client_that_closes_is_answered_and_the_handler_told(pair) -> None:
    ws, server, peer = pair
    peer.next_event()
    arrived = arrivals(ws)
    peer.send(CloseConnection(code=1000, reason="bye"))
    assert arrived.wait(DEADLINE_S)
    assert not ws.connected
    assert (server.close_reason, server.close_message) == (1000, "bye")
    assert isinstance(peer.next_event(), CloseConnection)


def test_a_frame_past_the_size_limit_closes_1009_and_ends_the_connection(pair) -> None:
    ws, _, peer = pair
    peer.next_event()
    arrived = arrivals(ws)
    peer.send(TextMessage(data="x" * (64 * 1024 + 1)))
    assert arrived.wait(DEADLINE_S)
    closed = peer.next_event()
    assert isinstance(closed, CloseConnection) and closed.code == 1009
    assert not ws.connected and ws.received == []


def test_flask_sock_runs_the_view_closes_and_keeps_only_the_mode() -> None:
    """The route as push/edge/ws_view.py uses it, under flask-sock's gunicorn mode: the
    view gets a ClientSocket; after it, flask-sock closes 1000, and its response reads
    only the `mode` the adapter keeps of the emptied Server."""
    bp = Blueprint("ws", __name__)
    servers: list = []

    @websocket_route(bp, "/ws")
    def view(ws: ClientSocket) -> None:
        servers.append(ws._server)
        ws.send_text("hello")

    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = server_options(max_message_size=64 * 1024)
    app.register_blueprint(bp)
    server_end, client_end = socket.socketpair()
    peer = Peer(client_end)
    environ = peer.request_environ(offer_deflate=False)
    headers = {k[5:].replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
    try:
        with pytest.raises(StopIteration):  # flask-sock's way out under gunicorn
            app.test_client().get(
                "/ws", headers=headers, environ_overrides={"gunicorn.socket": server_end}
            )
        assert isinstance(peer.next_event(), AcceptConnection)
        assert peer.next_event().data == "hello"
        closed = peer.next_event()
        assert isinstance(closed, CloseConnection) and closed.code == 1000
        assert [vars(server) for server in servers] == [{"mode": "gunicorn"}]
    finally:
        server_end.close()
        client_end.close()
