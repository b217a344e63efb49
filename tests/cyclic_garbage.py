"""Run by tests/test_memory.py in a process of its own (gevent patches it): serve the app,
open and close streams, and print how many objects each left in reference cycles.

    REDIS_URL=redis://... python tests/cyclic_garbage.py sse|ws COUNT
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
from gevent.pywsgi import WSGIServer  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from push import create_app  # noqa: E402
from push.runtime import tune_for_many_connections  # noqa: E402

#: Streams share users, as tabs do: users come and go too.
USERS = 25


def request_line(transport: str, user: str) -> bytes:
    if transport == "sse":
        return f"GET /stream?user_id={user} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws?user_id={user} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def one_stream(port: int, transport: str, user: str) -> None:
    """Open a stream, wait until it is served, hang up."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(request_line(transport, user))
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    gevent.sleep(0.3)  # the view runs: the user's channel, mover and pump start
    sock.close()


def churn(port: int, transport: str, count: int, prefix: str) -> None:
    gevent.joinall(
        [gevent.spawn(one_stream, port, transport, f"{prefix}{i % USERS}") for i in range(count)]
    )
    gevent.sleep(1.5)  # every view ends and every channel stops


def main() -> None:
    transport, count = sys.argv[1], int(sys.argv[2])
    os.environ["PUSH_DEMO"] = "1"
    app = create_app()
    tune_for_many_connections()
    server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
    server.start()
    churn(server.server_port, transport, count, "warm")
    gc.collect()
    gc.disable()
    churn(server.server_port, transport, count, "user")
    cyclic = gc.collect()
    print(json.dumps({"streams": count, "cyclic_objects": cyclic}))


if __name__ == "__main__":
    main()
