"""The service: `create_app` builds the Flask app that streams the mailboxes (gunicorn's
gevent worker serves it: see wsgi.py and gunicorn.conf.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from push import cli
from push.delivery.retention import Sweeper
from push.delivery.switchboard import Switchboard
from push.edge import (
    ack_view,
    api_view,
    bodies,
    demo_view,
    errors,
    health_view,
    sse_view,
    ticket_view,
    ws_view,
)
from push.edge.parts import EXTENSION, Parts
from push.edge.ws_reader import FrameSignal, ReadWhenReadable
from push.identity.tokens import TokenSettings
from push.model.settings import DeliverySettings, check_consistency, parse_environ
from push.storage.clients import redis_client
from push.storage.presence import Presence
from push.storage.store import Store

__all__ = ["PACKAGE", "JsonFormatter", "create_app", "init_logging"]

#: The demo page's template and the browser client (/static/push.js). In a checkout these
#: are links to the top-level templates/ and static/; an installed wheel carries copies.
PACKAGE = Path(__file__).parent


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment (and `test_config` on top, for tests).

    Nothing connects or starts here: `gunicorn --check-config` imports the app
    without gevent's patching, and workers fork after loading it. Redis is first
    reached, and the switchboard first started, by the first stream request."""
    app = Flask(
        __name__,
        template_folder=str(PACKAGE / "templates"),
        static_folder=str(PACKAGE / "static"),
    )
    app.config.from_mapping(parse_environ())
    if test_config is not None:
        app.config.from_mapping(test_config)
    check_consistency(app.config)
    app.config["SOCK_SERVER_OPTIONS"] = {
        # Pings go from the view's loop (push/edge/ws_view.py): no selector per socket.
        "ping_interval": None,
        "thread_class": ReadWhenReadable,
        "event_class": FrameSignal,
        # Clients send only short acks; simple-websocket closes 1009 past this size.
        "max_message_size": 64 * 1024,
    }

    settings = DeliverySettings.from_config(app.config)
    store = Store(
        app.config["REDIS_URL"],
        pool_size=app.config["PUSH_REDIS_POOL_SIZE"],
        block_s=app.config["PUSH_BLOCK_S"],
        cluster=app.config["PUSH_REDIS_CLUSTER"],
    )
    presence = Presence(
        store.redis,
        lease_s=app.config["PUSH_PRESENCE_LEASE_S"],
        limit=app.config["PUSH_MAX_CONNECTIONS_PER_USER"],
        ttl_s=app.config["PUSH_HISTORY_TTL_S"],
    )
    app.extensions[EXTENSION] = Parts(
        delivery=settings,
        store=store,
        presence=presence,
        tokens=TokenSettings.from_config(app.config),
        switchboard=Switchboard(store, settings, presence),
        # Started by each serving process (gunicorn.conf.py, app.py), not by the CLI.
        sweeper=Sweeper(store, settings, app.config["PUSH_MAILBOX_SWEEP_S"]),
        ready_redis=redis_client(
            app.config["REDIS_URL"],
            max_connections=1,
            socket_timeout=health_view.READY_TIMEOUT_S,
            connect_timeout=health_view.READY_TIMEOUT_S,
            wait_for_connection_s=health_view.READY_TIMEOUT_S,
            cluster=app.config["PUSH_REDIS_CLUSTER"],
        ),
    )
    proxies = app.config["PUSH_TRUSTED_PROXIES"]
    if proxies:
        # Only behind that many proxies of ours may X-Forwarded-* be believed.
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies
        )

    errors.init_app(app)
    bodies.init_app(app)
    app.register_blueprint(health_view.bp)
    app.register_blueprint(api_view.bp)
    app.register_blueprint(ticket_view.bp)
    app.register_blueprint(ack_view.bp)
    app.register_blueprint(sse_view.bp)
    app.register_blueprint(ws_view.bp)
    ws_view.sock.init_app(app)
    app.register_blueprint(demo_view.bp)
    app.cli.add_command(cli.push)
    init_logging(app.config["PUSH_LOG_FORMAT"])
    demo_view.warn_when_on(app.config)
    return app


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def init_logging(log_format: str) -> None:
    """The service's own lines (connections, dead letters, Redis errors) go to stderr."""
    logger = logging.getLogger("push")
    if not logger.handlers:
        handler = logging.StreamHandler()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    formatter = (
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    )
    for handler in logger.handlers:
        handler.setFormatter(formatter)
