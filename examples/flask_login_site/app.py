"""A tiny shop that already has a login, and gets per-user push from its session cookie.

The push service asks this site who a stream belongs to (PUSH_AUTH_URL), so the page
needs no token: it opens the stream with its cookie. Run both on one host (cookies are
not port-scoped, so the page on :5000 and push on :8000 share the session cookie):

    python examples/flask_login_site/app.py   # the site, on 127.0.0.1:5000
    PUSH_AUTH_URL=http://127.0.0.1:5000/push-auth \\
    PUSH_ALLOWED_ORIGINS=http://127.0.0.1:5000 REDIS_URL=redis://127.0.0.1:6379/0 \\
    gunicorn -c gunicorn.conf.py -b 127.0.0.1:8000 wsgi:app

Sign in as anyone with the password "push"; then `LPUSH user_<name>_messages hello`.
Settings (environment): SITE_PORT, PUSH_URL (where the page finds push), SECRET_KEY,
SESSION_EXPIRES_IN (seconds a stream lives before it asks again).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, login_required, login_user, logout_user

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from push.site import init_push_auth  # noqa: E402

PASSWORD = "push"


class User(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


def create_site() -> Flask:
    # The page loads push.js from the site (the repository's static/push.js).
    app = Flask(__name__, static_folder=str(ROOT / "static"), static_url_path="/push-static")
    app.secret_key = os.environ.get("SECRET_KEY", "example-only-change-me")
    app.config["PUSH_URL"] = os.environ.get("PUSH_URL", "http://127.0.0.1:8000")
    logins = LoginManager(app)
    logins.login_view = "login"
    logins.user_loader(User)

    # The one line: the push service's PUSH_AUTH_URL points at /push-auth.
    init_push_auth(app, expires_in=int(os.environ.get("SESSION_EXPIRES_IN", "300")))

    @app.get("/")
    @login_required
    def home() -> str:
        transport = request.args.get("transport", "auto")
        return render_template("index.html", push_url=app.config["PUSH_URL"], transport=transport)

    @app.route("/login", methods=["GET", "POST"])
    def login():
        error = None
        if request.method == "POST":
            name = request.form.get("name", "").strip()
            # ASCII letters and digits: push's user ids (and key names) take no others.
            if name.isascii() and name.isalnum() and request.form.get("password") == PASSWORD:
                login_user(User(name))
                return redirect(url_for("home"))
            error = "wrong name or password"
        return render_template("index.html", login=True, error=error)

    @app.post("/logout")
    def logout():
        logout_user()
        return redirect(url_for("login"))

    return app


if __name__ == "__main__":
    create_site().run("127.0.0.1", int(os.environ.get("SITE_PORT", "5000")))
