"""Run under gevent's monkey-patching (tests/test_redis_parser.py): the service's Redis
client's readiness checks, as a worker makes them.

    python tests/gevent_readiness.py REDIS_URL COMMANDS

Prints one JSON line: the parser class; the greenlet switches seen per pooled command
(its zero-timeout check); what a timed wait on an idle connection answered, after how
long, and whether other greenlets ran meanwhile; and what a timed wait answered when the
server closed the connection during it."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402

from push.storage.clients import redis_client  # noqa: E402

TIMED_WAIT_S = 0.3


class SwitchCounter:
    """A busy greenlet: counts how often the others let it run."""

    def __init__(self) -> None:
        self.switches = 0
        self._greenlet = gevent.spawn(self._run)
        gevent.sleep(0)

    def _run(self) -> None:
        while True:
            self.switches += 1
            gevent.sleep(0)

    def reset(self) -> None:
        self.switches = 0

    def stop(self) -> None:
        self._greenlet.kill()


def main() -> None:
    url, commands = sys.argv[1], int(sys.argv[2])
    client = redis_client(
        url, max_connections=2, socket_timeout=5, connect_timeout=2, wait_for_connection_s=5
    )
    client.ping()
    pool = client.connection_pool
    counter = SwitchCounter()

    counter.reset()
    for _ in range(commands):
        pool.release(pool.get_connection())
    per_command = counter.switches / commands

    connection = pool.get_connection()
    counter.reset()
    started = time.monotonic()
    idle_answer = connection.can_read(timeout=TIMED_WAIT_S)
    waited_s = time.monotonic() - started
    ran_meanwhile = counter.switches > 0
    counter.stop()

    connection.send_command("CLIENT", "ID")
    client_id = connection.read_response()
    killer = gevent.spawn_later(
        0.1, lambda: redis.Redis.from_url(url).execute_command("CLIENT", "KILL", "ID", client_id)
    )
    try:
        closed_answer = repr(connection.can_read(timeout=5))
    except redis.ConnectionError as error:
        closed_answer = type(error).__name__
    killer.join()
    print(
        json.dumps(
            {
                "parser": type(connection._parser).__name__,
                "switches_per_command": per_command,
                "idle_wait": {
                    "answer": idle_answer,
                    "seconds": waited_s,
                    "others_ran": ran_meanwhile,
                },
                "closed_during_wait": closed_answer,
            }
        )
    )


if __name__ == "__main__":
    main()
