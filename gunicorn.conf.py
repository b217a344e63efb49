"""gunicorn settings for push: `gunicorn -c gunicorn.conf.py wsgi:app`.

Command-line flags win over this file (`-b 0.0.0.0:9000`, `-w 4`). The
service's own settings come from the environment; see the README's table.
"""

import ipaddress
import logging
import multiprocessing
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger


def _int_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, got {raw!r}")
    return value


# --- Server socket --------------------------------------------------------------
# Loopback by default: put nginx (or another proxy) in front for the world.
bind = os.environ.get("PUSH_BIND", "127.0.0.1:8000")
# Pending connections the kernel queues while workers accept; reconnect storms are bursts.
backlog = 2048

# --- Workers --------------------------------------------------------------------
# One gevent worker per core: each holds thousands of connections on one core.
workers = _int_from_env("PUSH_WORKERS", multiprocessing.cpu_count())
# The gevent worker, so that a connection costs a greenlet, not a thread. It patches
# the standard library before the app is imported.
worker_class = "gevent"
# Connections per worker (1-100,000). Also raise `ulimit -n` and Redis `maxclients`.
worker_connections = _int_from_env("PUSH_WORKER_CONNECTIONS", 10_000)
# Never preload: the app must be imported after gevent has patched each worker.
preload_app = False
# Seconds of silence from a worker before the master restarts it. Streams do not count
# against it: the gevent worker reports alive from its own loop.
timeout = 30
# Seconds a worker gets to finish after SIGTERM before it is killed.
graceful_timeout = 10
# Seconds an idle keep-alive connection stays open between requests.
keepalive = 5

# --- Control ----------------------------------------------------------------------
# No control socket: it would be created in the working directory (the checkout).
control_socket_disable = True

# --- Hooks ------------------------------------------------------------------------


_created_metrics_dir = []


def on_starting(server):
    """Give the workers a fresh directory for their metrics (never inside the checkout)."""
    refuse_demo_mode_on_a_public_bind(server)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="push-metrics-")
        _created_metrics_dir.append(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def when_ready(server):
    """Said once, by the master, rather than once per worker."""
    if not os.environ.get("PUSH_API_KEY", "").strip():
        server.log.info("publish API is off (/api answers 404): set PUSH_API_KEY to turn it on")


def _flag_from_env(name: str) -> bool:
    """The same words push/model/settings.py accepts as on; anything else is off here (a wrong
    value is refused, with its name, when the app loads)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _is_loopback(address) -> bool:
    """Whether a parsed bind address (gunicorn's cfg.address) is reachable from this host
    only: a loopback address, a name that resolves to loopback alone, or a unix socket."""
    if isinstance(address, str):  # unix:/path
        return True
    if not isinstance(address, tuple):  # fd://N: a socket someone else opened
        return False
    host = address[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if not host:  # ":8000": every interface
        return False
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in found)


def refuse_demo_mode_on_a_public_bind(server):
    """Demo mode streams to anyone who names a user (?user_id=) and sends to any mailbox
    (/demo/send): refuse it on an address other hosts can reach, unless PUSH_DEMO_FORCE
    says that is meant. Checked here, before listening, because only gunicorn knows where
    it binds (-b or PUSH_BIND)."""
    if not _flag_from_env("PUSH_DEMO") or _flag_from_env("PUSH_DEMO_FORCE"):
        return
    public = [
        bind
        for bind, address in zip(server.cfg.bind, server.cfg.address, strict=True)
        if not _is_loopback(address)
    ]
    if public:
        server.log.error(
            "refusing demo mode (PUSH_DEMO=1) on %s, reachable from other hosts: anyone could "
            "read any user's stream by ?user_id= and send with /demo/send. Bind to 127.0.0.1, "
            "turn PUSH_DEMO off, or set PUSH_DEMO_FORCE=1 if this is meant",
            ", ".join(public),
        )
        sys.exit(1)


def post_worker_init(worker):
    """On SIGTERM, close every stream with "come back later" before gunicorn drains.

    gunicorn's own handler only stops the accept loop; streams would otherwise hold the
    worker until the graceful timeout and then be cut without a word."""
    import gevent

    switchboard = worker.wsgi.extensions["push"].switchboard
    stop_accepting = worker.handle_exit

    def handle_exit(signum, frame):
        stop_accepting(signum, frame)
        gevent.spawn(switchboard.shut_down)

    signal.signal(signal.SIGTERM, handle_exit)
    worker.wsgi.extensions["push"].sweeper.start()
    from push.runtime import tune_for_many_connections

    tune_for_many_connections()
    worker.log.info("Worker ready (pid: %s)", worker.pid)


def child_exit(server, worker):
    """A dead worker's live gauges must stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for directory in _created_metrics_dir:
        shutil.rmtree(directory, ignore_errors=True)


# --- Logging ----------------------------------------------------------------------
# Streams may carry a token or a ticket in their query string: no log line shows one.
#: Query parameters whose values are credentials, by their decoded, lower-case names.
_SECRET_NAMES = frozenset({"token", "ticket"})
#: One `name=value` of a query string, wherever a line has one: after `?`, `&` or `;`, or at
#: the start of a word or a quoted string (as %(q)s writes it). The value runs to the next
#: `&`, as werkzeug reads it, or to the end of the word or quote (no credential has a
#: quote or a space).
_PARAMETER = re.compile(r"(?P<lead>^|[?&;\s\"'])(?P<name>[^=?&;\s\"']+)=(?P<value>[^&\s\"']*)")
#: Rounds of percent-decoding a name gets: werkzeug decodes once; a proxy in front may
#: have decoded once already.
_DECODING_ROUNDS = 3


def _decoded_name(name: str) -> str:
    for _ in range(_DECODING_ROUNDS):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.strip().lower()


def redact_secrets(text: str) -> str:
    """`text` with the value of every token or ticket parameter replaced by [redacted].

    Names are compared as the service reads them, percent-decoded (`%74oken=` is
    `token=`), and in any case."""

    def redact(match: re.Match[str]) -> str:
        if _decoded_name(match["name"]) in _SECRET_NAMES:
            return f"{match['lead']}{match['name']}=[redacted]"
        return match[0]

    return _PARAMETER.sub(redact, text)


class _RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class RedactingLogger(Logger):
    """gunicorn's logger, with tokens and tickets cut out of error and access lines."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, _RedactSecrets) for f in log.filters):
                log.addFilter(_RedactSecrets())


logger_class = RedactingLogger
