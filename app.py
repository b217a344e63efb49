"""Development entry: `python app.py` (what `make run` runs).

Patches the standard library for gevent before anything else is imported,
starts a private Redis under ./var/ unless REDIS_URL is set, turns demo mode
on, and serves the app on http://127.0.0.1:8000 with gevent's WSGI server: on
loopback only, since demo mode lets anyone read any user's stream.
Production runs the same app under gunicorn: `gunicorn -c gunicorn.conf.py wsgi:app`.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from push.model.settings import ConfigError  # noqa: E402
from push.runtime import tune_for_many_connections  # noqa: E402
from push.service import create_app  # noqa: E402
from push.storage.server import RedisServer, RedisServerError  # noqa: E402

HERE = Path(__file__).resolve().parent
#: The private Redis's fixed port, so a second terminal can reach it; 0 picks a free one.
PRIVATE_REDIS_PORT = int(os.environ.get("PUSH_DEV_REDIS_PORT", "6390"))
#: Where the private Redis keeps its append-only file (ignored by git).
PRIVATE_REDIS_DIR = Path(os.environ.get("PUSH_DEV_REDIS_DIR", HERE / "var" / "redis"))


def private_redis() -> RedisServer:
    server = RedisServer(PRIVATE_REDIS_DIR, PRIVATE_REDIS_PORT or None, appendonly=True)
    return server.start()


def how_to_send(redis_url: str, port: int) -> str:
    lines = [
        f"push demo: http://127.0.0.1:{port}/",
        "",
        "Send a message to user 42:",
        f"  REDIS_URL={redis_url} PUSH_DEMO=1 .venv/bin/flask --app wsgi push send 42 hello",
        "(or any producer: LPUSH user_42_messages hello on that Redis)",
    ]
    lines += [
        f"  curl -X POST -H 'Content-Type: application/json' "
        f'-d \'{{"user_id": "42", "data": "hello"}}\' http://127.0.0.1:{port}/demo/send',
        "Watch user 42's stream:",
        f"  curl -N 'http://127.0.0.1:{port}/stream?user_id=42'",
        f"  open http://127.0.0.1:{port}/?user_id=42&transport=sse",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    server = None
    if "REDIS_URL" not in os.environ:
        try:
            server = private_redis()
        except RedisServerError as error:
            print(f"push: {error}", file=sys.stderr)
            return 1
        os.environ["REDIS_URL"] = server.url
        print(f"push: started a private Redis on port {server.port}, data in {PRIVATE_REDIS_DIR}")
    os.environ.setdefault("PUSH_DEMO", "1")
    try:
        app = create_app()
    except ConfigError as error:
        print(f"push: {error}", file=sys.stderr)
        return 1
    tune_for_many_connections()
    app.extensions["push"].sweeper.start()
    print(how_to_send(os.environ["REDIS_URL"], port), flush=True)
    if not app.config["PUSH_API_KEY"]:
        print("push: the publish API is off: set PUSH_API_KEY to turn it on", flush=True)
    try:
        WSGIServer(("127.0.0.1", port), app).serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
