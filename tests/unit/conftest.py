"""The unit tests of delivery's rules (push/rules/): plain tables, no Redis, no gunicorn,
no sockets, no gevent. They ask for none of the fixtures of tests/conftest.py (none of
those is autouse), so the folder runs in a second on a machine without redis-server."""
