"""Run by tests/test_memory.py in a process of its own (gevent patches it): serve the app,
open streams and count the greenlets they hold, close them, and print how many objects
each left in reference cycles.

    REDIS_URL=redis://... PUSH_MAILBOX_WATCH=notify|block \
        python tests/cyclic_garbage.py sse|ws COUNT
"""

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import greenlet  # noqa: E402
import redis  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from simple_websocket import Server  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from push.runtime import tune_for_many_connections  # noqa: E402
from push.service import create_app  # noqa: E402
from tests.harness import waits  # noqa: E402

#: Streams share users, as tabs do: users come and go too.
USERS = 25
#: Seconds any awaited state may take.
DEADLINE_S = 30.0


def request_line(transport: str, user: str) -> bytes:
    if transport == "sse":
        return f"GET /stream?user_id={user} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws?user_id={user} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def wait_until(condition, what: str) -> None:
    """The harness's wait, with this script's deadline (time.sleep is gevent's here)."""
    waits.wait_until(condition, DEADLINE_S, 0.05, what)


def open_stream(port: int, transport: str, user: str) -> socket.socket:
    """A stream whose view runs (SSE: its first comment arrived; WS: the 101)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(request_line(transport, user))
    served = b"connected" if transport == "sse" else b"\r\n\r\n"
    received = b""
    while served not in received:
        received += sock.recv(4096)
    return sock


def movers_blocked(client: redis.Redis, prefix: str) -> int:
    """This process's blocking movers blocked in Redis for the users named `prefix`<n>."""
    names = (entry.get("name", "") for entry in client.client_list())
    return sum(name.startswith("push:mover:") and f"user_{prefix}" in name for name in names)


def drained(client: redis.Redis, prefix: str) -> int:
    """Users named `prefix`<n> whose mail this process drains (it holds their lease), and
    whose blocking mover, if it has one, is blocked in Redis."""
    leases = client.mget([f"{{user_{prefix}{i}_messages}}:mover" for i in range(USERS)])
    ours = sum(1 for holder in leases if holder and holder.split(":")[1] == str(os.getpid()))
    if os.environ.get("PUSH_MAILBOX_WATCH") == "block":
        return min(ours, movers_blocked(client, prefix))
    return ours


def websocket_state_kept() -> bool:
    """Some WebSocket Server still holds its socket and protocol state."""
    return any(isinstance(o, Server) and "sock" in o.__dict__ for o in gc.get_objects())


def live_greenlets() -> int:
    return sum(isinstance(o, greenlet.greenlet) and not o.dead for o in gc.get_objects())


def churn(app, port: int, transport: str, count: int, prefix: str) -> int:
    """Open `count` streams of USERS users, wait until every user is drained (and, with
    blocking movers, its mover blocked in Redis), hang up, and wait until every channel
    (and WebSocket Server) has let go.
    Returns how many more greenlets were alive while the streams were open."""
    before = live_greenlets()
    switchboard = app.extensions["push"].switchboard
    client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    opening = [
        gevent.spawn(open_stream, port, transport, f"{prefix}{i % USERS}") for i in range(count)
    ]
    socks = [greenlet.get() for greenlet in opening]
    wait_until(lambda: drained(client, prefix) == USERS, "every user drained")
    # A new user's channel reads its history once (its pump's greenlet ends after it).
    wait_until(
        lambda: all(user._pumping is None for user in switchboard.users.values()),
        "every pump idle",
    )
    held = live_greenlets() - before
    for sock in socks:
        sock.close()
    wait_until(lambda: not switchboard.users, "every LocalUser stopped")
    wait_until(lambda: drained(client, prefix) == 0, "every lease given back")
    wait_until(lambda: movers_blocked(client, prefix) == 0, "every mover's connection closed")
    if transport == "ws":
        wait_until(lambda: not websocket_state_kept(), "every WebSocket Server emptied")
    client.close()
    return held


def main() -> None:
    transport, count = sys.argv[1], int(sys.argv[2])
    os.environ["PUSH_DEMO"] = "1"
    app = create_app()
    tune_for_many_connections()
    server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
    server.start()
    churn(app, server.server_port, transport, count, "warm")
    gc.collect()
    gc.disable()
    held = churn(app, server.server_port, transport, count, "user")
    cyclic = gc.collect()
    measured = {"streams": count, "users": USERS, "greenlets": held, "cyclic_objects": cyclic}
    print(json.dumps(measured))


if __name__ == "__main__":
    main()
