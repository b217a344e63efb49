"""Run under gevent's monkey-patching (tests/test_redis_parser.py): how often a pooled
command's readiness check lets other greenlets run, with the service's Redis client.

    python tests/gevent_readiness.py REDIS_URL COMMANDS

Prints one JSON line: the parser class and the greenlet switches seen per command."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402

from push.redis_clients import redis_client  # noqa: E402


def main() -> None:
    url, commands = sys.argv[1], int(sys.argv[2])
    client = redis_client(
        url, max_connections=2, socket_timeout=5, connect_timeout=2, wait_for_connection_s=5
    )
    client.ping()
    pool = client.connection_pool
    switches = 0

    def count_switches() -> None:
        nonlocal switches
        while True:
            switches += 1
            gevent.sleep(0)

    counter = gevent.spawn(count_switches)
    gevent.sleep(0)
    switches = 0
    for _ in range(commands):
        pool.release(pool.get_connection())
    seen = switches
    counter.kill()
    parser = pool.get_connection()._parser
    print(json.dumps({"parser": type(parser).__name__, "switches_per_command": seen / commands}))


if __name__ == "__main__":
    main()
