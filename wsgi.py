"""gunicorn's entry: `gunicorn -c gunicorn.conf.py wsgi:app` (the gevent worker patches first)."""

from push import create_app

app = create_app()
