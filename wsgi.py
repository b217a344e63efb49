"""gunicorn's entry: `gunicorn -c gunicorn.conf.py wsgi:app` (the gevent worker patches first)."""

from push.service import create_app

app = create_app()
