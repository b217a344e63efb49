"""`from push import publish` in a process that is not the service (a Celery worker, a cron
script): redis and the standard library only, and it works against a real Redis (and logs
what it drops, without the service's metrics)."""

from __future__ import annotations

import json
import subprocess
import sys

import redis

from push.storage.server import RedisServer

HEAVY = {
    "flask",
    "werkzeug",
    "gevent",
    "prometheus_client",
    "jwt",
    "flask_sock",
    "simple_websocket",
}

PROBE = """
import json, logging, sys
from push import PublishError, disconnect, publish, publish_many
import redis
client = redis.Redis.from_url(sys.argv[1])
logging.basicConfig()
online = publish(client, "42", {"hello": "world"})
publish(client, "43", "first", mailbox_max=1)
publish(client, "43", "second", mailbox_max=1)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"loaded": loaded, "online": online}))
"""


def test_producer_import_loads_no_service_packages_and_publishes(tmp_path):
    server = RedisServer(tmp_path).start()
    try:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, server.url, json.dumps(sorted(HEAVY))],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        answer = json.loads(out.stdout)
        # The drop past the cap is logged; nothing counts it (no metrics in this process).
        assert "mailbox full mailbox=user_43_messages dropped=1" in out.stderr
        assert answer["loaded"] == []
        assert answer["online"] == 0
        client = redis.Redis.from_url(server.url)
        assert json.loads(client.lrange("user_42_messages", 0, -1)[0]) == {"hello": "world"}
    finally:
        server.stop()
