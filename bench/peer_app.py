"""The peer: Flask-SSE from PyPI, as its README sets it up, for the side-by-side bench.

Run like push: `gunicorn -c bench/peer_gunicorn.conf.py --pythonpath bench peer_app:app`
(the same gevent worker and server settings), with REDIS_URL naming the same Redis.
`GET /stream?channel=user_<id>` streams what `PUBLISH user_<id> '{"data": ...}'`
(what `sse.publish(data, channel=...)` sends) carries.
"""

import os

from flask import Flask
from flask_sse import sse

app = Flask(__name__)
app.config["REDIS_URL"] = os.environ["REDIS_URL"]
app.register_blueprint(sse, url_prefix="/stream")


@app.get("/ping")
def ping() -> str:
    return "ok"
