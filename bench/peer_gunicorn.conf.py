"""gunicorn settings for the Flask-SSE peer: the server settings of ../gunicorn.conf.py.

The same gevent worker, worker_connections (PUSH_WORKER_CONNECTIONS), backlog and
timeouts as push, without push's own hooks (they reach into push's app).
"""

import os

bind = "127.0.0.1:8001"
backlog = 2048
workers = 2
worker_class = "gevent"
worker_connections = int(os.environ.get("PUSH_WORKER_CONNECTIONS", "10000"))
preload_app = False
timeout = 30
graceful_timeout = 10
keepalive = 5
control_socket_disable = True
