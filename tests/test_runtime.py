"""push/runtime.py: the settings of a serving process."""

from __future__ import annotations

import textwrap

import pytest
from servers import run_for_json

from push.runtime import is_ip_address

#: Opens a connection to Redis by its IP address in a gevent-patched process, tuned as a
#: worker is; prints whether gevent's thread pool (where its resolver sends lookups) was
#: started, and what a name resolves to afterwards.
LOOKUPS = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import json, socket, sys
    from gevent import get_hub
    from push.runtime import tune_for_many_connections
    if sys.argv[2] == "tuned":
        tune_for_many_connections()
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
    used_threads = get_hub().threadpool.size > 0
    named = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    print(json.dumps({"used_threads": used_threads, "named": bool(named)}))
    """
)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        (b"10.1.2.3", True),
        ("::1", True),
        ("fe80::1%eth0", True),
        ("localhost", False),
        ("redis.internal", False),
        ("", False),
        (None, False),
        (bytearray(b"127.0.0.1"), False),  # not a type getaddrinfo takes
    ],
)
def test_is_ip_address(host, expected):
    assert is_ip_address(host) is expected


def lookups(redis_server, mode: str) -> dict:
    return run_for_json(["-c", LOOKUPS, str(redis_server.port), mode])


def test_a_worker_connects_to_an_ip_address_without_gevents_thread_pool(redis_server):
    assert lookups(redis_server, "untuned")["used_threads"] is True  # gevent's default
    tuned = lookups(redis_server, "tuned")
    assert tuned["used_threads"] is False
    assert tuned["named"] is True  # a name still resolves (through gevent's resolver)
